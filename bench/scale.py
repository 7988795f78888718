"""Scale-out benchmark: tickets per second with one and with two `mailagent worker` processes on
Redis and PostgreSQL, the offline model, the "send when sure" policy.

    .venv/bin/python bench/scale.py [-n 600] [--repeat 2] [--database-url URL] [--redis-url URL]

Each measurement: a fresh PostgreSQL database (knowledge base synced, N tickets stored), a fresh
Redis namespace, `mailagent worker --processes P` started as a real process, then one `fan_out`
message with every ticket; the clock runs until every draft is decided. Runs for P = 1 and P = 2
are interleaved; the medians are reported, and the ratio P=2 / P=1 (the ideal on two cores is 2,
less what PostgreSQL, Redis and the SMTP sink take of the same two cores).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.pipeline import MAILBOX, Databases, tickets  # noqa: E402


def measure(processes: int, n: int, databases: Databases, redis_url: str, smtp_port: int, root: Path) -> float:
    from sqlalchemy import func
    from sqlmodel import col, select

    from mailagent import config
    from mailagent.config import DATA
    from mailagent.knowledge.search import sync
    from mailagent.pipeline.ingest import Inbound, store_many
    from mailagent.store import db, schema
    from mailagent.store.models import Draft
    from mailagent.worker import broker

    tag = f"p{processes}{uuid.uuid4().hex[:6]}"
    url = databases.fresh(tag)
    path = root / f"{tag}.toml"
    path.write_text(f"""
[database]
url = "{url}"
[broker]
url = "{redis_url}"
namespace = "mailagent-bench-{tag}"
[worker]
threads = 8
[policy]
directory = "{root / 'policies'}"
reload_seconds = 0
[ingest]
trusted_authserv_ids = ["mx1.nimbusnotes.example"]
[mailboxes.support]
address = "{MAILBOX}"
[mailboxes.support.smtp]
host = "127.0.0.1"
port = {smtp_port}
security = "none"
""")
    settings = config.use(config.load(path))
    schema.upgrade(url)
    sync(url, DATA / "knowledge")
    ids = [i for i in store_many(url, [Inbound(raw, "file", "support") for raw in tickets(n, tag)]) if i]
    log = (root / f"{tag}.log").open("wb")
    worker = subprocess.Popen([sys.executable, "-m", "mailagent", "--config", str(path), "worker",
                               "--processes", str(processes)], stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        time.sleep(3.0)                                   # imports and boot, outside the clock
        started = time.perf_counter()
        broker.send(settings, "fan_out", ids)
        while True:
            with db.reading(url) as s:
                decided = s.exec(select(func.count()).select_from(Draft)
                                 .where(col(Draft.decided_at).is_not(None))).one()
            if decided >= n:
                break
            if worker.poll() is not None:
                raise SystemExit(f"the worker exited ({worker.returncode}); see {log.name}")
            time.sleep(0.05)
        return n / (time.perf_counter() - started)
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=120)
        db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=600, help="tickets per measurement (default 600)")
    parser.add_argument("--repeat", type=int, default=2, help="measurements per process count (default 2)")
    parser.add_argument("--database-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
                        help="PostgreSQL server for the throwaway databases")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/12", help="Redis for the broker")
    args = parser.parse_args()

    from tests.support.flow import SEND_WHEN_SURE
    from tests.support.smtpd import SmtpServer

    root = Path(tempfile.mkdtemp(prefix="mailagent-bench-scale-"))
    (root / "policies").mkdir()
    (root / "policies" / "00-send-when-sure.toml").write_text(SEND_WHEN_SURE)
    databases = Databases(root, args.database_url)
    smtp = SmtpServer().start()
    rates: dict[int, list[float]] = {1: [], 2: []}
    try:
        for round_ in range(args.repeat):
            for processes in ((1, 2) if round_ % 2 == 0 else (2, 1)):
                rate = measure(processes, args.n, databases, args.redis_url, smtp.port, root)
                rates[processes].append(rate)
                print(f"  {processes} worker process(es): {rate:6.1f} tickets/s", flush=True)
    finally:
        smtp.stop()
        databases.drop_all()
    one, two = statistics.median(rates[1]), statistics.median(rates[2])
    print(f"\n1 process  {one:6.1f} tickets/s\n2 processes{two:6.1f} tickets/s\nratio      {two / one:6.2f}  "
          f"(median of {args.repeat}; ideal 2.0 on two cores shared with PostgreSQL, Redis and the SMTP sink)")


if __name__ == "__main__":
    main()
