"""IDLE after a server-side disconnect: how soon new mail is noticed, against a live connection.

    .venv/bin/python bench/idle_reconnect.py [-n 10] [--refresh 60]

Starts a throwaway Dovecot and one `IdleWatcher` (re-IDLE every `--refresh` seconds). Each round,
interleaved: `live` appends a message and times the watcher's call on the open connection (the
baseline); `kick` runs `doveadm kick`, appends a message at once, and times the call that follows
(BYE noticed, reconnect, resync). Prints the medians and the ratio kick/live. Before the watcher
noticed BYE and hang-ups, a kick's mail waited for the next re-IDLE: up to `--refresh` seconds.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mailagent.config import Imap  # noqa: E402
from mailagent.mail.imap import IdleWatcher  # noqa: E402
from tests.support.dovecot import PASSWORD, Dovecot, free_port  # noqa: E402
from tests.support.mails import mail  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=10, help="rounds of each kind (default 10)")
    parser.add_argument("--refresh", type=float, default=60, help="idle_refresh_seconds (default 60)")
    args = parser.parse_args()
    logging.getLogger("mailagent").setLevel(logging.ERROR)      # one reconnect warning per kick
    root = Path(tempfile.mkdtemp(prefix="mailagent-bench-idle-"))
    root.chmod(0o755)
    server = Dovecot(root, free_port(), users=1).start()
    calls: list[float] = []
    stop = threading.Event()
    try:
        os.environ.setdefault("MAILAGENT_BENCH_IMAP_PASSWORD", PASSWORD)
        cfg = Imap(host="127.0.0.1", port=server.port, security="none", user=server.user(0),
                   password_env="MAILAGENT_BENCH_IMAP_PASSWORD", idle_refresh_seconds=args.refresh)
        watcher = IdleWatcher("bench", cfg, lambda: calls.append(time.monotonic()), stop, max_backoff=1)
        threading.Thread(target=watcher.run, daemon=True).start()
        _wait(lambda: len(calls) == 1)
        live, kick = [], []
        for i in range(args.n):
            for kind, times in (("live", live), ("kick", kick)):
                time.sleep(0.3)
                before = len(calls)
                started = time.monotonic()
                if kind == "kick":
                    server.kick(server.user(0))
                server.append(server.user(0), "INBOX", mail(i))
                if not _wait(lambda n=before: len(calls) > n, timeout=args.refresh + 10):
                    raise SystemExit(f"{kind} round {i}: no call within {args.refresh + 10:.0f} s")
                times.append(calls[before] - started)
        live_s, kick_s = statistics.median(live), statistics.median(kick)
        print(f"rounds: {args.n} of each; reconnects: {watcher.connections - 1}")
        print(f"{'case':<8}{'median s':>10}{'max s':>10}")
        print(f"{'live':<8}{live_s:>10.3f}{max(live):>10.3f}")
        print(f"{'kick':<8}{kick_s:>10.3f}{max(kick):>10.3f}")
        print(f"ratio kick/live: {kick_s / live_s:.1f}; the old bound for kick: {args.refresh:.0f} s (the re-IDLE)")
    finally:
        stop.set()
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def _wait(predicate, timeout: float = 10) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return False


if __name__ == "__main__":
    main()
