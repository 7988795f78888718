"""Pipeline benchmark: stored ticket -> agent -> policy -> outbox -> SMTP, against the concurrency bound.

    .venv/bin/python bench/pipeline.py [-n 200] [--openai-n 256] [--delay 0.5] [--inflight 64] [--threads 8]
                                       [--database-url URL] [--only a,b0,b] [--py-spy DIR]

Tickets are the customer questions of `examples/inbox` that need no person (password reset,
invoices, seats, export, ...), each with its own Message-ID and sender. Every run gets a fresh
database (SQLite file, or a throwaway PostgreSQL database on the server of `--database-url`) with
the knowledge base synced and a "send when sure" policy, and runs in a fresh child process:
store the tickets, then `InProcess(settings)` (dramatiq on the in-process broker, `[worker]
threads` actor threads, agent runs as coroutines, at most `[worker] inflight` at once) and
`until_idle()`: process_message -> draft_reply -> deliver. The clock runs
from the first enqueue until every reply was handed to the SMTP server (aiosmtpd). A few warm-up
tickets go through first, outside the clock and the counts.

  (a)   the offline model (deterministic, in-process, no network)
  (b0)  the real Agents SDK + `openai` client against the local OpenAI-compatible server answering
        at once: a `search_knowledge` tool call, then the `ReplyDraft` JSON (what the pipeline
        costs without model latency)
  (b)   the same with every model answer sent after `--delay` seconds (default 0.5)
  (s)   the floor the dependencies set: the Agents SDK and the `openai` client alone, the same two
        calls per ticket (the `search_knowledge` tool call, then a structured answer) against the
        same server answering at once, `--inflight` runs at once on one event loop; no database,
        no mail, no guardrails, no policy. (b0) minus (s) is the pipeline's own CPU.

`[model] llm_injection_check = false`, so a ticket is exactly 2 model calls and the bound is
inflight / (2 * delay) tickets/s: what `inflight` runs could do if nothing but the model
took time. Both servers live in this (parent) process, so the CPU time of a run's child process is
the pipeline's own: "CPU ms/ticket outside the model".
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

KEY_ENV = "BENCH_MODEL_KEY"
MODEL = "gpt-bench-mini"
MAILBOX = "support@nimbusnotes.example"
CALLS_PER_TICKET = 2          # tool call, then the answer (the LLM injection classifier is off)

# Questions the knowledge base answers and no person needs to see (examples/inbox/README.md).
INBOX = ("01-password-reset", "02-invoice-download", "05-data-export", "07-plan-upgrade", "08-add-seats",
         "09-change-email", "10-offline-sync-conflict", "12-account-deletion", "18-is-service-down",
         "19-invoice-lookup-resend", "27-de-kuendigung-rechnung", "28-es-restablecer-contrasena",
         "29-html-only-guest-permissions", "32-attachment-import-error", "33-rfc2047-security-questions",
         "34-failed-payment")


REPLY = ("Hi,\n\nthanks for getting in touch. Here is what our guide says about this, step by step; "
         "if anything is still unclear, just reply to this email.\n\nBest regards,\nThe Example support team")


# --- tickets --------------------------------------------------------------------------------

def tickets(n: int, tag: str) -> list[bytes]:
    """`n` copies of the inbox questions, each with its own Message-ID and sender (so each is a
    new conversation of a new customer, and no per-customer send limit applies)."""
    from mailagent.config import DATA

    bodies = [(DATA / "examples" / "inbox" / f"{name}.eml").read_bytes() for name in INBOX]
    out = []
    for i in range(n):
        raw = bodies[i % len(bodies)]
        head, sep, rest = raw.partition(b"\n\n")
        sender = f"customer{i}.{tag}@bench.example".encode()
        head = re.sub(rb"(?m)^Message-ID:.*$", b"Message-ID: <" + f"{tag}.{i}.{uuid.uuid4().hex}".encode()
                      + b"@bench.example>", head)
        head = re.sub(rb"(?m)^Return-Path:.*$", b"Return-Path: <" + sender + b">", head)
        head = re.sub(rb"(?m)^From:(.*?)<[^>\n]*>", rb"From:\1<" + sender + b">", head)
        head = re.sub(rb"(?m)^From: *([^<\s]+@[^\s]+) *$", b"From: " + sender, head)
        head = re.sub(rb"(?m)((?:header\.d|header\.from|smtp\.mailfrom)=)[^;\s]+", rb"\1bench.example", head)
        out.append(head + sep + rest)
    return out


# --- the model server's answers ----------------------------------------------------------------

def responder(delay: float) -> Any:
    """First call of a run: search the knowledge base for the subject; second: the ReplyDraft."""
    from tests.support.openai_server import RecordedRequest, Step, tool_call
    from tests.support.openai_server import json as json_step

    def answer(request: RecordedRequest) -> Step:
        results = request.tool_results
        if not results:
            found = re.search(r"<customer_message subject=(['\"])(.*?)\1>", request.first_user_message or "")
            return tool_call("search_knowledge", {"query": found.group(2) if found else "help"}, delay=delay)
        try:
            cited = [hit["id"] for hit in json.loads(results[-1].output)[:1]]
        except (ValueError, TypeError, KeyError):
            cited = []
        return json_step({"reply": REPLY, "confidence": 0.9, "intent": "other", "language": "en",
                          "cited_articles": cited, "needs_human": False, "needs_human_reason": ""}, delay=delay)

    return answer


# --- one run, in a child process -----------------------------------------------------------------

def sdk_run(spec: dict[str, Any]) -> dict[str, Any]:
    """Run (s): what an agent run costs in the SDK and the client, with nothing of ours around it."""
    import asyncio

    from agents import Agent, ModelSettings, OpenAIChatCompletionsModel, Runner, function_tool, set_tracing_disabled
    from openai import AsyncOpenAI
    from pydantic import BaseModel

    class Answer(BaseModel):
        reply: str
        confidence: float
        intent: str
        language: str
        cited_articles: list[str]
        needs_human: bool
        needs_human_reason: str

    @function_tool
    def search_knowledge(query: str) -> str:
        """Search the knowledge base."""
        return json.dumps([{"id": "password-reset", "title": "Resetting your password", "snippet": query}])

    set_tracing_disabled(True)                     # nothing leaves loopback; the pipeline keeps its own traces

    async def main(n: int) -> None:
        client = AsyncOpenAI(base_url=spec["base_url"], api_key="sk-loopback-only", max_retries=0)
        agent = Agent(name="support", instructions="Answer the customer from the knowledge base.",
                      tools=[search_knowledge], output_type=Answer,
                      model=OpenAIChatCompletionsModel(model=MODEL, openai_client=client),
                      model_settings=ModelSettings(temperature=0))
        slots = asyncio.Semaphore(spec["inflight"])

        async def one(i: int) -> None:
            async with slots:
                await Runner.run(agent, f"<customer_message subject='Question {i}'>How do I reset my password?"
                                        f"</customer_message>")

        await asyncio.gather(*(one(i) for i in range(n)))
        await client.close()

    asyncio.run(main(spec["warmup"]))
    spy = _py_spy(spec["py_spy"]) if spec.get("py_spy") else None
    cpu, started = time.process_time(), time.perf_counter()
    asyncio.run(main(spec["n"]))
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    if spy is not None:
        spy.send_signal(signal.SIGINT)
        spy.wait(timeout=60)
    return {"tickets": spec["n"], "decided": spec["n"], "states": {}, "sent": 0, "seconds": seconds,
            "cpu_seconds": cpu, "model_calls": CALLS_PER_TICKET * spec["n"], "draft_seconds": [], "to_sent_seconds": [],
            "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def child_run(spec: dict[str, Any]) -> dict[str, Any]:
    if spec["provider"] == "sdk":
        return sdk_run(spec)
    from sqlmodel import col, select

    from mailagent import config
    from mailagent.store import db, schema
    from mailagent.config import DATA, Settings
    from mailagent.pipeline.ingest import Inbound, store_many
    from mailagent.knowledge.search import sync

    url = spec["database_url"]
    model: dict[str, Any] = {"provider": spec["provider"]}
    if spec["provider"] == "openai":
        model |= {"name": MODEL, "base_url": spec["base_url"], "api_key_env": KEY_ENV, "max_retries": 0,
                  "timeout_seconds": 60, "llm_injection_check": False}
    settings = config.use(Settings.model_validate({
        "database": {"url": url},
        "broker": {"url": "memory://"},
        "worker": {"threads": spec["threads"], "inflight": spec["inflight"]},
        "model": model,
        "policy": {"directory": spec["policy_dir"]},         # reload_seconds as shipped: no edits here
        "ingest": {"trusted_authserv_ids": ["mx1.nimbusnotes.example"]},   # the sample inbox's MTA
        "mailboxes": {"support": {"address": MAILBOX, "display_name": "Nimbus Support",
                                  "smtp": {"host": "127.0.0.1", "port": spec["smtp_port"], "security": "none"}}},
    }))
    schema.upgrade(url)
    sync(url, DATA / "knowledge")

    from mailagent.store.models import Draft, Outbound
    from mailagent.worker.inprocess import InProcess

    def store(raws: list[bytes]) -> list[int]:
        ids = store_many(url, [Inbound(raw, "file", "support") for raw in raws])
        assert all(i is not None for i in ids)
        return [i for i in ids if i is not None]

    with InProcess(settings) as app:
        warm = store(tickets(spec["warmup"], spec["tag"] + "w"))
        for message_id in warm:
            app.actors.process_message.send(message_id)
        app.until_idle()

        ids = store(tickets(spec["n"], spec["tag"]))
        spy = _py_spy(spec["py_spy"]) if spec.get("py_spy") else None
        cpu, started = time.process_time(), time.perf_counter()
        for message_id in ids:                    # what ingest's enqueue amounts to
            app.actors.process_message.send(message_id)
        app.until_idle()
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(timeout=60)

    with db.reading(url) as s:
        drafts = list(s.exec(select(Draft).where(col(Draft.message_id).in_(ids))))
        sent_at = dict(s.exec(select(Outbound.id, Outbound.sent_at).where(
            col(Outbound.id).in_([d.outbound_id for d in drafts if d.outbound_id]))).all())
    decided = [d for d in drafts if d.decided_at is not None]
    run_seconds = [(d.decided_at - d.started_at).total_seconds() for d in drafts if d.decided_at is not None]
    to_sent = [(sent - d.started_at).total_seconds()
               for d in decided if d.outbound_id and (sent := sent_at.get(d.outbound_id)) is not None]
    states = dict(Counter(str(d.state) for d in drafts))
    calls = sum((d.usage or {}).get("requests", 0) for d in decided)
    db.dispose()
    return {
        "tickets": len(ids), "decided": len(decided), "states": states, "sent": len(to_sent),
        "seconds": seconds, "cpu_seconds": cpu, "model_calls": calls,
        "draft_seconds": run_seconds, "to_sent_seconds": to_sent,
        "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _py_spy(output: str) -> subprocess.Popen[bytes]:
    """py-spy attached to this process for the clock's window only (not imports, not warm-up).
    On-GIL samples only: the model's latency is spent on the server side, so what is left is the
    pipeline's own Python time, and one GIL serializes it across all worker threads."""
    spy = subprocess.Popen([os.environ.get("PY_SPY", "py-spy"), "record", "--gil", "--nonblocking", "--rate", "250",
                            "--format", "raw", "-o", output, "--pid", str(os.getpid())],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)                                # let it attach before the clock starts
    return spy


# --- the parent -------------------------------------------------------------------------------

class Databases:
    """A fresh database per run: a SQLite file under `root`, or a throwaway database on the
    PostgreSQL server of `base_url` (dropped afterwards)."""

    def __init__(self, root: Path, base_url: str | None) -> None:
        self.root, self.base_url = root, base_url
        self.made: list[str] = []

    def fresh(self, tag: str) -> str:
        if not self.base_url or self.base_url.startswith("sqlite"):
            return f"sqlite:///{self.root}/{tag}.db"
        from sqlalchemy import create_engine, text
        from sqlalchemy.engine import make_url

        name = f"mailagent_bench_{tag}_{os.getpid()}"
        admin = create_engine(self.base_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        self.made.append(name)
        return make_url(self.base_url).set(database=name).render_as_string(hide_password=False)

    def drop_all(self) -> None:
        if not self.made or not self.base_url:
            return
        from sqlalchemy import create_engine, text

        admin = create_engine(self.base_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            for name in self.made:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def run_child(spec: dict[str, Any], py_spy: Path | None = None) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY" and not k.startswith("MAILAGENT_")}
    env[KEY_ENV] = "sk-loopback-only"
    if py_spy is not None:
        spec = {**spec, "py_spy": str(py_spy / f"{spec['tag']}.txt")}
    out = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True,
                         env=env, check=False)
    if out.returncode != 0:
        sys.stderr.write(out.stderr[-5000:])
        raise SystemExit(f"run {spec['tag']} failed ({out.returncode})")
    result = json.loads(next(line for line in reversed(out.stdout.splitlines()) if line.startswith("{")))
    result["loop_closed_errors"] = out.stderr.count("RuntimeError: Event loop is closed")
    if spec.get("py_spy") and Path(spec["py_spy"]).exists():
        result["profile"] = profile_table(Path(spec["py_spy"]))
    return result


# Where a sampled stack's time goes: the first matching frame from the leaf up names the category.
_CATEGORIES = (
    ("SQLAlchemy / SQLModel", ("(sqlalchemy/", "(sqlmodel/", "(sqlite3/", "(psycopg")),
    ("Agents SDK", ("(agents/",)),
    ("openai client + HTTP", ("(openai/", "(httpx", "(httpcore/", "(h11/", "(anyio/")),
    ("pydantic", ("(pydantic",)),
    ("email (stdlib)", ("(email/",)),
    ("dramatiq", ("(dramatiq/",)),
    ("asyncio, threads, json", ("(asyncio/", "(threading.py", "(concurrent/", "(queue.py", "(json/")),
    ("mailagent", ("(mailagent/",)),
)


def profile_table(path: Path) -> list[tuple[str, float]]:
    """Share of the on-CPU samples per category (py-spy collapsed stacks: `frame;frame;... count`)."""
    totals: Counter[str] = Counter()
    for line in re.findall(r".*? \d+$", path.read_text(), re.MULTILINE | re.DOTALL):  # a frame may hold a line break
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        category = next((name for frame in reversed(frames) for name, marks in _CATEGORIES
                         if any(mark in frame for mark in marks)), "other (stdlib, interpreter)")
        totals[category] += int(count)
    whole = sum(totals.values()) or 1
    return [(name, count / whole) for name, count in totals.most_common()]


def quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=200, help="tickets for (a), the offline model (default 200)")
    parser.add_argument("--openai-n", type=int, default=256, help="tickets for (b0) and (b) (default 256)")
    parser.add_argument("--delay", type=float, default=0.5, help="seconds before each model answer in (b)")
    parser.add_argument("--inflight", type=int, default=64, help="[worker] inflight: agent runs at once (default 64)")
    parser.add_argument("--threads", type=int, default=8, help="[worker] threads: actor threads (default 8)")
    parser.add_argument("--warmup", type=int, default=8, help="tickets run before the clock starts")
    parser.add_argument("--database-url", help="PostgreSQL server to make throwaway databases on "
                                               "(default: a fresh SQLite file per run)")
    parser.add_argument("--only", default="a,b0,b,s", help="which runs, of a,b0,b,s")
    parser.add_argument("--py-spy", type=Path, help="record each run's clocked window with py-spy (on-GIL samples, "
                                                     "collapsed stacks) into this folder; $PY_SPY names the binary")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child_run(json.loads(args.child))))
        return

    from tests.support.flow import SEND_WHEN_SURE
    from tests.support.openai_server import OpenAIServer
    from tests.support.smtpd import SmtpServer

    runs = [r.strip() for r in args.only.split(",") if r.strip()]
    root = Path(tempfile.mkdtemp(prefix="mailagent-bench-pipeline-"))
    policies = root / "policies"
    policies.mkdir()
    (policies / "00-send-when-sure.toml").write_text(SEND_WHEN_SURE)
    if args.py_spy:
        args.py_spy.mkdir(parents=True, exist_ok=True)
    databases = Databases(root, args.database_url)
    smtp = SmtpServer().start()
    server = OpenAIServer(models=(MODEL,)).start()
    results: dict[str, dict[str, Any]] = {}
    try:
        backend = "PostgreSQL" if args.database_url and not args.database_url.startswith("sqlite") else "SQLite"
        print(f"{args.inflight} agent runs in flight, {args.threads} actor threads, {backend} (fresh per run), "
              f"policy: send when sure; "
              f"[model] llm_injection_check = false", flush=True)
        for tag in runs:
            provider, n, delay = ("offline", args.n, 0.0) if tag == "a" else ("sdk", args.openai_n, 0.0) if tag == "s" \
                else ("openai", args.openai_n, 0.0 if tag == "b0" else args.delay)
            server.reset(responder=responder(delay))
            received_before = len(smtp.received)
            spec = {"tag": tag, "provider": provider, "n": n, "warmup": args.warmup, "threads": args.threads, "inflight": args.inflight,
                    "database_url": databases.fresh(tag), "policy_dir": str(policies), "smtp_port": smtp.port,
                    "base_url": server.base_url}
            print(f"running ({tag}): {n} tickets, {provider} model"
                  + (f", answers after {delay * 1000:.0f} ms" if provider == "openai" else "") + " ...", flush=True)
            servers_cpu = time.process_time()
            result = run_child(spec, args.py_spy)
            result["servers_cpu_seconds"] = time.process_time() - servers_cpu
            suffix = f".{tag}@bench.example"
            result["received"] = sum(1 for r in smtp.received[received_before:]
                                     if any(rcpt.endswith(suffix) for rcpt in r.recipients))
            result["delay"] = delay
            results[tag] = result
    finally:
        server.close()
        smtp.stop()
        databases.drop_all()
        shutil.rmtree(root, ignore_errors=True)

    print()
    names = {"a": "(a)  offline model", "b0": "(b0) OpenAI server, 0 ms",
             "b": f"(b)  OpenAI server, {args.delay * 1000:.0f} ms", "s": "(s)  Agents SDK alone, 0 ms"}
    for tag, r in results.items():
        if tag == "s":
            sdk_ms = 1000 * r["cpu_seconds"] / r["decided"]
            print(f"{names[tag]:<27}{r['decided'] / r['seconds']:8.1f} tickets/s  ({r['decided']} runs, "
                  f"{args.inflight} at once, in {r['seconds']:.2f} s)")
            print(f"{'':<27}{sdk_ms:8.1f} CPU ms/ticket in the Agents SDK and the openai client alone (the floor)")
            if r.get("profile"):
                print(f"{'':<27}profile (share of on-CPU samples): "
                      + ", ".join(f"{name} {share:.0%}" for name, share in r["profile"]))
            continue
        rate = r["decided"] / r["seconds"]
        cpu_ms = 1000 * r["cpu_seconds"] / max(r["decided"], 1)
        in_flight = sum(r["draft_seconds"]) / r["seconds"]
        print(f"{names[tag]:<27}{rate:8.1f} tickets/s  ({r['decided']}/{r['tickets']} decided, {r['sent']} sent, "
              f"{r['received']} received by SMTP, in {r['seconds']:.2f} s)")
        what = "CPU ms/ticket, the offline model included (it runs in-process)" if tag == "a" else \
            "CPU ms/ticket outside the model"
        print(f"{'':<27}{cpu_ms:8.1f} {what}  (fake servers: "
              f"{1000 * r['servers_cpu_seconds'] / max(r['decided'], 1):.1f} ms/ticket, not counted)")
        print(f"{'':<27}draft run p50/p95 {quantile(r['draft_seconds'], .5) * 1000:.0f}/"
              f"{quantile(r['draft_seconds'], .95) * 1000:.0f} ms, draft start to SMTP p50/p95 "
              f"{quantile(r['to_sent_seconds'], .5) * 1000:.0f}/{quantile(r['to_sent_seconds'], .95) * 1000:.0f} ms, "
              f"mean drafting runs in flight {in_flight:.1f}")
        if tag != "a":
            print(f"{'':<27}model calls/ticket {r['model_calls'] / max(r['decided'], 1):.2f}; "
                  f"states {r['states']}; peak RSS {r['max_rss_mb']:.0f} MB")
        else:
            print(f"{'':<27}states {r['states']}; peak RSS {r['max_rss_mb']:.0f} MB")
        if r.get("profile"):
            print(f"{'':<27}profile (share of on-CPU samples): "
                  + ", ".join(f"{name} {share:.0%}" for name, share in r["profile"]))
        if r["loop_closed_errors"]:
            print(f"{'':<27}stderr: {r['loop_closed_errors']} x 'RuntimeError: Event loop is closed' (model clients "
                  f"left open by their run, closed by the GC on another run's loop)")
    if "s" in results and "b0" in results:
        floor = results["s"]["cpu_seconds"] / results["s"]["decided"]
        b0 = results["b0"]["cpu_seconds"] / results["b0"]["decided"]
        print(f"ours (b0) - (s)            {1000 * (b0 - floor):8.1f} CPU ms/ticket of the pipeline's own  "
              f"(ratio (b0)/(s) {b0 / floor:.2f})")
    if "b" in results and args.delay > 0:
        r = results["b"]
        bound = args.inflight / (CALLS_PER_TICKET * args.delay)
        rate = r["decided"] / r["seconds"]
        print(f"bound (b)                  {bound:8.1f} tickets/s  ({args.inflight} in flight / "
              f"({CALLS_PER_TICKET} calls x {args.delay * 1000:.0f} ms))")
        if "b0" in results:
            ceiling = results["b0"]["decided"] / results["b0"]["seconds"]
            print(f"pipeline ceiling (b0)      {ceiling:8.1f} tickets/s  (no model latency; (b) can reach about "
                  f"min(bound, ceiling) = {min(bound, ceiling):.1f}, ratio {min(bound, ceiling) / bound:.2f})")
        print(f"ratio (b)/bound            {rate / bound:8.2f}   (goal: >= 0.90 with {args.inflight} in-flight runs "
              f"per worker process)")


if __name__ == "__main__":
    main()
