"""Scale-out benchmark: tickets per second with one and with two `mailagent worker` processes on
Redis and PostgreSQL, the "send when sure" policy.

    .venv/bin/python bench/scale.py [-n 600] [--repeat 2] [--model offline|openai] [--delay 0.5]
                                    [--inflight 8] [--database-url URL] [--redis-url URL]

Each measurement: a fresh PostgreSQL database (knowledge base synced, N tickets stored), a fresh
Redis namespace, `mailagent worker --processes P` started as a real process, then one `fan_out`
message with every ticket; the clock runs until every draft is decided. Runs for P = 1 and P = 2
are interleaved; the medians are reported, and the ratio P=2 / P=1.

  --model offline   the offline model: every ticket is CPU in the worker, so the ratio shows how
                    much of a free core a second process finds (on two shared cores: little)
  --model openai    the real Agents SDK and `openai` client against the local OpenAI-compatible
                    server (in this process), each answer after `--delay` s, `[worker] inflight`
                    runs per process: the production shape, where a ticket waits on the model.
                    Bound: P x inflight / (2 calls x delay) tickets/s; a second process doubles it.
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

from bench.pipeline import CALLS_PER_TICKET, KEY_ENV, MAILBOX, MODEL, Databases, responder, tickets  # noqa: E402


def model_section(base_url: str | None) -> str:
    """The config's [model]: the offline model, or the local OpenAI-compatible server."""
    if base_url is None:
        return ""
    return f"""
[model]
provider = "openai"
name = "{MODEL}"
base_url = "{base_url}"
api_key_env = "{KEY_ENV}"
max_retries = 0
timeout_seconds = 60
llm_injection_check = false
"""


def measure(processes: int, n: int, databases: Databases, redis_url: str, smtp_port: int, root: Path,
            inflight: int, base_url: str | None) -> float:
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
inflight = {inflight}
{model_section(base_url)}
[policy]
directory = "{root / 'policies'}"
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

    def store(count: int, batch: str) -> list[int]:
        return [i for i in store_many(url, [Inbound(raw, "file", "support") for raw in tickets(count, batch)]) if i]

    def run(ids: list[int], total: int) -> None:
        """Hand `ids` to the workers and wait until `total` drafts are decided."""
        broker.send(settings, "fan_out", ids)
        while True:
            with db.reading(url) as s:
                decided = s.exec(select(func.count()).select_from(Draft)
                                 .where(col(Draft.decided_at).is_not(None))).one()
            if decided >= total:
                return
            if worker.poll() is not None:
                raise SystemExit(f"the worker exited ({worker.returncode}); see {log.name}")
            time.sleep(0.05)

    warm, ids = store(8 * processes, tag + "w"), store(n, tag)
    log = (root / f"{tag}.log").open("wb")
    worker = subprocess.Popen([sys.executable, "-m", "mailagent", "--config", str(path), "worker",
                               "--processes", str(processes)], stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True, env={**os.environ, KEY_ENV: "sk-loopback-only"})
    try:
        run(warm, len(warm))          # boot and first-use imports of every process, outside the clock
        started = time.perf_counter()
        run(ids, len(warm) + n)
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
    parser.add_argument("--model", choices=("offline", "openai"), default="offline",
                        help="offline (CPU-bound) or the local OpenAI-compatible server (model-latency-bound)")
    parser.add_argument("--delay", type=float, default=0.5, help="seconds before each model answer (--model openai)")
    parser.add_argument("--inflight", type=int, default=8, help="[worker] inflight: agent runs per process (default 8)")
    args = parser.parse_args()

    from tests.support.flow import SEND_WHEN_SURE
    from tests.support.openai_server import OpenAIServer
    from tests.support.smtpd import SmtpServer

    root = Path(tempfile.mkdtemp(prefix="mailagent-bench-scale-"))
    (root / "policies").mkdir()
    (root / "policies" / "00-send-when-sure.toml").write_text(SEND_WHEN_SURE)
    databases = Databases(root, args.database_url)
    smtp = SmtpServer().start()
    server = OpenAIServer(models=(MODEL,)).start() if args.model == "openai" else None
    if server is not None:
        server.reset(responder=responder(args.delay))
    base_url = server.base_url if server is not None else None
    bound = args.inflight / (CALLS_PER_TICKET * args.delay) if server is not None else None
    print(f"{args.n} tickets per measurement, {args.model} model"
          + (f" answering after {args.delay * 1000:.0f} ms, {args.inflight} runs in flight per process"
             if bound else "") + ", PostgreSQL, Redis", flush=True)
    rates: dict[int, list[float]] = {1: [], 2: []}
    try:
        for round_ in range(args.repeat):
            for processes in ((1, 2) if round_ % 2 == 0 else (2, 1)):
                rate = measure(processes, args.n, databases, args.redis_url, smtp.port, root, args.inflight,
                               base_url)
                rates[processes].append(rate)
                print(f"  {processes} worker process(es): {rate:6.1f} tickets/s"
                      + (f" ({rate / (processes * bound):.2f} of the bound)" if bound else ""), flush=True)
    finally:
        if server is not None:
            server.close()
        smtp.stop()
        databases.drop_all()
    one, two = statistics.median(rates[1]), statistics.median(rates[2])
    print(f"\n1 process  {one:6.1f} tickets/s" + (f"   bound {bound:.1f}, ratio {one / bound:.2f}" if bound else ""))
    print(f"2 processes{two:6.1f} tickets/s" + (f"   bound {2 * bound:.1f}, ratio {two / (2 * bound):.2f}"
                                                if bound else ""))
    print(f"ratio 2/1  {two / one:6.2f}   (median of {args.repeat}; ideal 2.0"
          + ("; the model's latency, not the CPU, is the bound" if bound else
             " on two cores shared with PostgreSQL, Redis and the SMTP sink") + ")")


if __name__ == "__main__":
    main()
