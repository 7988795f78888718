"""LMTP benchmark: messages stored per second through `mailagent lmtp`, against the MTA pipe and
against `store_many` called in-process, measured in the same run.

    .venv/bin/python bench/lmtp.py [-n 2000] [--clients 8] [--pipe 40] [--repeat 3] [--database-url URL]

Each round uses a fresh database (a SQLite file unless `--database-url`, whose message table is
emptied instead) and support-sized mails (4-40 KB, bench/ingest.py's corpus); rounds interleave
the three ways, and medians are printed:
  in-process  `store_many` per message in this process (one durable commit each: what an LMTP
              listener that answers each message after its own commit could reach at best)
  lmtp        `mailagent lmtp` (started before the clock runs), C clients, each one connection,
              one LMTP transaction per message, 250 read before the next
  pipe        `mailagent ingest` per message, as Postfix's `mailbox_command` runs it
and the listener's CPU per message (from /proc; it moves with how many messages share a commit),
and what parsing a MAIL or RCPT argument costs the listener against aiosmtpd's own parse.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.ingest import corpus
from tests.support.lmtp import Listener, deliver

MAILAGENT = str(Path(sys.executable).parent / "mailagent")


def fresh(root: Path, tag: str, database_url: str | None) -> Path:
    """A config file on an empty, migrated database."""
    from mailagent.store import db, schema

    url = database_url or f"sqlite:///{root}/{tag}.db"
    schema.upgrade(url)
    if database_url:
        from sqlalchemy import text

        with db.engine(url).begin() as conn:
            conn.execute(text("DELETE FROM message"))
    db.dispose()
    path = root / f"{tag}.toml"
    path.write_text(f'[database]\nurl = "{url}"\n[mailboxes.support]\naddress = "support@example.com"\n')
    return path


def url_of(config_file: Path) -> str:
    return config_file.read_text().split('"')[1]


def in_process(config_file: Path, messages: list[bytes]) -> float:
    from mailagent.pipeline.ingest import Inbound, store_many

    url = url_of(config_file)
    started = time.perf_counter()
    for raw in messages:
        store_many(url, [Inbound(raw, "lmtp", "support")])
    return len(messages) / (time.perf_counter() - started)


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far (from /proc: the listener is not our child's child)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def address_parse() -> tuple[float, float]:
    """µs per MAIL/RCPT argument: aiosmtpd's parse, and the listener's (once per connection)."""
    import asyncio
    import timeit

    from aiosmtpd.smtp import SMTP

    from mailagent.worker.lmtp import Server

    loop = asyncio.new_event_loop()
    server = Server(object(), loop=loop)
    arg, n = "<support@example.com>", 20_000
    theirs = timeit.timeit(lambda: SMTP._getaddr(server, arg), number=n) / n * 1e6
    ours = timeit.timeit(lambda: server._getaddr(arg), number=n) / n * 1e6
    loop.close()
    return theirs, ours


def lmtp(config_file: Path, messages: list[bytes], clients: int, cpu: list[float]) -> float:
    """Messages per second through `mailagent lmtp`; appends the listener's CPU ms per message to `cpu`."""
    listener = Listener(config_file).start()
    assert listener.proc is not None
    try:
        failures: list[int] = []

        def client(part: list[bytes]) -> None:
            c = listener.client()
            for raw in part:
                code = deliver(c, "customer@example.org", ["support@example.com"], raw)[-1][0]
                if code != 250:
                    failures.append(code)
            c.quit()

        threads = [threading.Thread(target=client, args=(messages[k::clients],)) for k in range(clients)]
        started, cpu_before = time.perf_counter(), cpu_seconds(listener.proc.pid)
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        seconds = time.perf_counter() - started
        cpu.append((cpu_seconds(listener.proc.pid) - cpu_before) / len(messages) * 1e3)
        assert not failures, failures
    finally:
        listener.stop()
    return len(messages) / seconds


def pipe(config_file: Path, messages: list[bytes]) -> float:
    env = {**os.environ, "MAILAGENT_CONFIG": str(config_file)}
    started = time.perf_counter()
    for raw in messages:
        subprocess.run([MAILAGENT, "ingest"], input=raw, env=env, check=True, capture_output=True)
    return len(messages) / (time.perf_counter() - started)


def count(config_file: Path) -> int:
    from mailagent.store import listings

    return len(listings.messages(url_of(config_file), limit=10**7))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=2000, help="messages per LMTP and in-process round")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--pipe", type=int, default=40, help="messages per pipe round (a process each)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--database-url", help="default: a fresh SQLite file per round")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="mailagent-lmtp-bench-"))
    messages = corpus(args.n)
    print(f"{args.n} messages, {sum(map(len, messages)) / 1e6:.0f} MB; {args.clients} LMTP clients", flush=True)
    rates: dict[str, list[float]] = {"in-process store_many": [], "lmtp": [], "pipe": []}
    listener_cpu: list[float] = []
    try:
        for r in range(args.repeat):
            for way, values in rates.items():
                config_file = fresh(root, f"{way.split()[0]}{r}", args.database_url)
                if way == "lmtp":
                    rate = lmtp(config_file, messages, args.clients, listener_cpu)
                elif way == "pipe":
                    rate = pipe(config_file, messages[: args.pipe])
                else:
                    rate = in_process(config_file, messages)
                expected = args.pipe if way == "pipe" else args.n
                assert count(config_file) == expected, (way, count(config_file), expected)
                values.append(rate)
                print(f"  round {r + 1} {way:22} {rate:8.1f} msg/s", flush=True)
        median = {way: statistics.median(values) for way, values in rates.items()}
        print(f"{'way':24} {'msg/s (median)':>14}")
        for way, rate in median.items():
            print(f"{way:24} {rate:14.1f}")
        print(f"lmtp listener CPU ms/msg  {statistics.median(listener_cpu):14.2f}")
        theirs, ours = address_parse()
        print(f"MAIL/RCPT argument parse   {ours:6.2f} us, aiosmtpd's {theirs:6.1f} us (x2 per message)")
        print(f"ratio lmtp / pipe        {median['lmtp'] / median['pipe']:14.1f}")
        print(f"ratio lmtp / in-process  {median['lmtp'] / median['in-process store_many']:14.2f}")
        print("goal: lmtp >= 1,000 msg/s stored; the in-process figure commits each message alone")
        print(f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
