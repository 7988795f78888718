"""Ingestion benchmark: Dovecot -> stored and enqueued, against a raw imapclient fetch.

    .venv/bin/python bench/ingest.py [-n 5000] [--database-url URL] [--broker-url redis://...]

Starts a throwaway Dovecot, fills two mailboxes with N and 4N realistic support mails (written
straight into Maildir), then runs each measurement in a fresh child process:
  raw     imapclient BODY.PEEK[] fetch, 100 UIDs per FETCH (the baseline: what the server gives)
  quiet   the same with imaplib's debug messages off, as `mail.imap.connect` sets it (the floor)
  ingest  mailagent's poll: fetch, store raw bytes + identity, move the cursor, enqueue the rows
          (the database is migrated beforehand, as in production; the child checks its version)
and prints messages per second two ways: steady state (timed inside the child, around the fetch
loop or the poll) and whole process (timed by the parent around the child, start-up included,
as mbsync or fetchmail would be timed), the ratios ingest/raw of both, and peak RSS at N and 4N.
Medians of runs whose order alternates (raw first, then ingest first): these machines are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.dovecot import PASSWORD, Dovecot, free_port
from tests.support.mails import mail

WORDS = ["invoice", "refund", "password", "login", "export", "seats", "plan", "billing", "sync", "offline", "error", "please", "thanks", "account", "team", "workspace", "page", "note", "share", "permission", "upgrade", "cancel", "payment", "card", "api", "limit"]


def corpus(n: int, seed: int = 7) -> list[bytes]:
    """Support-mail-sized messages (a few KB to ~40 KB, some with quoted history)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        words = rng.randint(80, 2500)
        body = " ".join(rng.choice(WORDS) for _ in range(words))
        body = "\n".join(body[j:j + 72] for j in range(0, len(body), 72))
        if i % 3 == 0:
            body += "\n\nOn Mon, 16 Nov 2026, Support wrote:\n" + "\n".join("> " + body[j:j + 70] for j in range(0, 2000, 70))
        out.append(mail(i, sender=f"customer{i % 997}@example.org", subject=f"Question {i} about {rng.choice(WORDS)}",
                        body=body))
    return out


def fill(dovecot: Dovecot, user: str, messages: list[bytes]) -> None:
    """Write straight into the user's Maildir: APPENDing 20,000 messages would dominate the run."""
    with dovecot.client(user) as c:           # let Dovecot create the Maildir
        c.select_folder("INBOX")
    new = dovecot.root / "mail" / user / "Maildir" / "new"
    for i, raw in enumerate(messages):
        (new / f"{1700000000 + i}.M{i}P1.bench").write_bytes(raw.replace(b"\r\n", b"\n"))
    shutil.chown(new, "nobody", "nogroup")
    for path in new.iterdir():
        shutil.chown(path, "nobody", "nogroup")


def child_raw(port: int, user: str, quiet: bool) -> dict[str, float]:
    from imapclient import IMAPClient

    started, cpu = time.perf_counter(), time.process_time()
    with IMAPClient("127.0.0.1", port=port, ssl=False) as c:
        if quiet:
            from mailagent.mail import imap

            imap.quiet(c)
        c.login(user, PASSWORD)
        c.select_folder("INBOX", readonly=True)
        uids = c.search(["ALL"])
        count = 0
        for i in range(0, len(uids), 100):
            count += len(c.fetch(uids[i:i + 100], ["BODY.PEEK[]"]))
    return {"messages": count, "seconds": time.perf_counter() - started, "cpu": time.process_time() - cpu}


def settings_for(port: int, user: str, database_url: str, broker_url: str, namespace: str) -> dict[str, object]:
    return {
        "database": {"url": database_url},
        "broker": {"url": broker_url, "namespace": namespace},
        "mailboxes": {"support": {"address": "support@example.com", "imap": {
            "host": "127.0.0.1", "port": port, "security": "none", "user": user,
            "password_env": "BENCH_IMAP_PASSWORD", "idle": False}}},
    }


def child_ingest(port: int, user: str, database_url: str, broker_url: str, namespace: str) -> dict[str, float]:
    """What a process that polls once does: load the settings, check the schema, poll, hand the
    new rows to the workers (one broker message per batch)."""
    from mailagent import config
    from mailagent.config import Settings
    from mailagent.pipeline import poll
    from mailagent.store import schema
    from mailagent.worker import broker

    settings = config.use(Settings.model_validate(settings_for(port, user, database_url, broker_url, namespace)))
    schema.ensure_schema(database_url)
    broker.install(settings)          # as in the worker process that runs the poll actor: start-up, not steady state
    started, cpu = time.perf_counter(), time.process_time()
    result = poll.poll(settings, "support", lambda ids: broker.send(settings, "fan_out", ids))
    return {"messages": len(result.stored), "seconds": time.perf_counter() - started, "cpu": time.process_time() - cpu}


def run_child(kind: str, *args: str) -> dict[str, float]:
    """The child's own figures, and `whole`: its wall time from start to exit."""
    env = {**os.environ, "BENCH_IMAP_PASSWORD": PASSWORD}
    started = time.perf_counter()
    out = subprocess.run([sys.executable, __file__, "--child", kind, *args], capture_output=True, text=True, env=env,
                         check=True)
    whole = time.perf_counter() - started
    return {**json.loads(out.stdout.strip().splitlines()[-1]), "whole": whole}


def forget(broker_url: str, namespace: str) -> None:
    """Drop what the run enqueued (nobody consumes it)."""
    import redis

    client = redis.Redis.from_url(broker_url)
    keys = list(client.scan_iter(f"{namespace}*"))
    if keys:
        client.delete(*keys)


def prepare(url: str) -> None:
    """Migrate beforehand, in this process: a polling process finds its database ready."""
    from mailagent.store import db, schema

    schema.upgrade(url)
    if url.startswith("postgresql"):
        from sqlalchemy import text

        with db.engine(url).begin() as conn:
            conn.execute(text("TRUNCATE message, mailbox_cursor RESTART IDENTITY CASCADE"))
    db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=5000)
    parser.add_argument("--database-url", help="default: a fresh SQLite file per run")
    parser.add_argument("--broker-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each, interleaved; medians are reported")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        port, user = int(rest[0]), rest[1]
        figures = child_ingest(port, user, *rest[2:5]) if kind == "ingest" else child_raw(port, user, kind == "quiet")
        figures["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(figures))
        return

    root = Path(tempfile.mkdtemp(prefix="mailagent-bench-"))
    root.chmod(0o755)
    dovecot = Dovecot(root / "dovecot", free_port(), users=2).start()
    try:
        small, large = dovecot.user(0), dovecot.user(1)
        print(f"writing {args.n} and {4 * args.n} messages into Maildir ...", flush=True)
        messages = corpus(4 * args.n)
        fill(dovecot, small, messages[: args.n])
        fill(dovecot, large, messages)
        size = sum(map(len, messages[: args.n])) / 1e6
        print(f"N = {args.n} messages, {size:.0f} MB", flush=True)

        def ingest(user: str, tag: str) -> dict[str, float]:
            url = args.database_url or f"sqlite:///{root}/{tag}.db"
            prepare(url)
            namespace = f"mailagent-bench-{os.getpid()}-{tag}"
            try:
                return run_child("ingest", str(dovecot.port), user, url, args.broker_url, namespace)
            finally:
                forget(args.broker_url, namespace)

        run_child("raw", str(dovecot.port), small)                   # warms Dovecot's index
        runs: dict[str, list[dict[str, float]]] = {"raw": [], "quiet": [], "ingest": []}
        for attempt in range(args.repeat):                            # the order rotates: noise hits all
            for kind in [*runs][attempt % 3:] + [*runs][:attempt % 3]:
                runs[kind].append(ingest(small, f"n{attempt}") if kind == "ingest"
                                  else run_child(kind, str(dovecot.port), small))
        ours_4n = ingest(large, "4n")

        def rate(kind: str, key: str) -> float:
            return statistics.median(r["messages"] / r[key] for r in runs[kind])

        def cpu(kind: str) -> float:
            return statistics.median(r["cpu"] / r["messages"] * 1e6 for r in runs[kind])

        ours = runs["ingest"]
        print(f"(medians of {args.repeat}; {({r['messages'] for r in ours})} stored per run)")
        print(f"{'':34} {'steady msg/s':>12} {'whole process msg/s':>20} {'steady CPU us/msg':>18}")
        for kind, label in (("raw", "raw imapclient fetch"), ("quiet", "raw fetch, imaplib debug off"),
                            ("ingest", "mailagent stored+enqueued")):
            print(f"{label:34} {rate(kind, 'seconds'):12.0f} {rate(kind, 'whole'):20.0f} {cpu(kind):18.0f}")
        for kind, label in (("raw", "ratio ingest/raw"), ("quiet", "ratio ingest/raw, debug off")):
            print(f"{label:34} {rate('ingest', 'seconds') / rate(kind, 'seconds'):12.2f} "
                  f"{rate('ingest', 'whole') / rate(kind, 'whole'):20.2f}")
        print("(goals against raw: >= 0.8 steady, >= 0.5 whole)")
        startup = statistics.median(r["whole"] - r["seconds"] for r in ours)
        raw_startup = statistics.median(r["whole"] - r["seconds"] for r in runs["raw"])
        print(f"{'start-up (whole - steady)':34} {startup:.2f}s   (raw: {raw_startup:.2f}s)")
        rss = max(r["max_rss_mb"] for r in ours)
        print(f"peak RSS at N             {rss:8.0f} MB")
        print(f"peak RSS at 4N            {ours_4n['max_rss_mb']:8.0f} MB  (ratio {ours_4n['max_rss_mb'] / rss:.2f}; "
              f"{ours_4n['messages'] / ours_4n['seconds']:.0f} msg/s)")
    finally:
        dovecot.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
