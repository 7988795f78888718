"""The `mailagent` command. Each subcommand is a small function over the modules it names;
output for people by default, `--json` for programs (field names are documented in the README)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from mailagent import config
from mailagent.store import db, schema
from mailagent.pipeline import ingest
from mailagent.cli import views
from mailagent.config import ConfigError, Settings

EX_DATAERR, EX_NOINPUT, EX_TEMPFAIL, EX_CONFIG = 65, 66, 75, 78

Handler = Callable[[Settings, argparse.Namespace], int]


class Fail(Exception):
    """A clear error for the user, with the exit code to leave with."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def _print_json(rows: Sequence[dict[str, Any]]) -> None:
    json.dump(list(rows), sys.stdout, indent=2, ensure_ascii=False, default=str)
    sys.stdout.write("\n")


def _schema(settings: Settings) -> str:
    url = settings.database.url
    schema.ensure_schema(url)
    return url


# --- commands -------------------------------------------------------------------------------

def cmd_db_upgrade(settings: Settings, _args: argparse.Namespace) -> int:
    schema.upgrade(settings.database.url)
    print(f"database is at the newest schema: {db.safe_url(settings.database.url)}")
    return 0


def cmd_ingest(settings: Settings, args: argparse.Namespace) -> int:
    """Store messages from files or stdin. An MTA pipe gets 75 (try again later) when storage is
    down, so the MTA keeps the message rather than bouncing it."""
    paths: list[str] = args.files or ["-"]
    items = []
    for path in paths:
        try:
            raw = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
        except OSError as exc:
            raise Fail(f"cannot read {path}: {exc.strerror or exc}", EX_NOINPUT) from None
        if not raw.strip():
            raise Fail(f"{'standard input' if path == '-' else path}: empty, no message to store", EX_DATAERR)
        items.append(ingest.Inbound(raw, "pipe" if path == "-" else "file", args.mailbox))
    if args.mailbox:
        settings.mailbox(args.mailbox)
    try:
        ids = ingest.store_many(_schema(settings), items)
    except SQLAlchemyError as exc:
        raise Fail(f"storage unavailable, nothing stored: {exc.__class__.__name__}: {exc}", EX_TEMPFAIL) from None
    new = [i for i in ids if i is not None]
    _enqueue_processing(settings, new)
    print(f"stored {len(new)} new message(s), {len(ids) - len(new)} already stored", file=sys.stderr)
    return 0


def _enqueue_processing(settings: Settings, ids: list[int]) -> None:
    """With a shared broker, tell the workers; with the in-process one, `run` will find them."""
    if settings.broker.in_process or not ids:
        return
    try:
        from mailagent.worker import actors

        actors.enqueue_processing(ids)
    except Exception as exc:  # noqa: BLE001 - stored is what matters; the sweeper enqueues later
        logging.getLogger(__name__).warning("stored, but could not enqueue (%s): the sweeper will", exc)


def cmd_messages_list(settings: Settings, args: argparse.Namespace) -> int:
    rows = views.messages(_schema(settings), limit=args.limit)
    if args.json:
        _print_json(rows)
    else:
        views.print_table(rows, ["id", "received_at", "kind", "from", "subject", "conversation_id", "parse_error"])
    return 0


def cmd_messages_show(settings: Settings, args: argparse.Namespace) -> int:
    url = _schema(settings)
    if args.raw:
        sys.stdout.buffer.write(views.raw_message(url, args.id))
        sys.stdout.buffer.flush()
        return 0
    print(views.message_detail(url, args.id))
    return 0


def cmd_conversations_list(settings: Settings, args: argparse.Namespace) -> int:
    rows = views.conversations(_schema(settings), limit=args.limit)
    if args.json:
        _print_json(rows)
    else:
        views.print_table(rows, ["id", "last_message_at", "state", "customer", "subject", "messages", "replies"])
    return 0


def cmd_conversations_show(settings: Settings, args: argparse.Namespace) -> int:
    print(views.conversation_detail(_schema(settings), args.id))
    return 0


def cmd_kb_sync(settings: Settings, _args: argparse.Namespace) -> int:
    from mailagent.knowledge.search import sync

    result = sync(_schema(settings), Path(settings.knowledge.directory))
    print(f"knowledge base {settings.knowledge.directory}: {result.added} added, {result.updated} updated, "
          f"{result.removed} removed, {result.unchanged} unchanged")
    return 0


def cmd_kb_search(settings: Settings, args: argparse.Namespace) -> int:
    from mailagent.knowledge.search import search

    hits = search(_schema(settings), " ".join(args.query), locale=args.locale, limit=args.limit)
    if args.json:
        _print_json([{"id": h.id, "title": h.title, "locale": h.locale, "score": round(h.score, 3),
                      "snippet": h.snippet} for h in hits])
        return 0
    if not hits:
        print("no matching article (run `mailagent kb sync` if the knowledge base is empty)")
    for h in hits:
        print(f"{h.score:.2f}  {h.id}  {h.title}\n      {' '.join(h.snippet.split())[:160]}")
    return 0


def _reviewer(args: argparse.Namespace) -> str:
    return args.reviewer or os.environ.get("MAILAGENT_REVIEWER") or f"{os.environ.get('USER', 'rep')}@cli"


def cmd_drafts_list(settings: Settings, args: argparse.Namespace) -> int:
    rows = views.drafts(_schema(settings), state=args.state, limit=args.limit)
    if args.json:
        _print_json(rows)
    else:
        views.print_table(rows, ["id", "conversation_id", "state", "decision", "rule", "intent", "confidence", "flags"])
    return 0


def cmd_drafts_show(settings: Settings, args: argparse.Namespace) -> int:
    print(views.draft_detail(_schema(settings), args.id))
    return 0


def cmd_drafts_approve(settings: Settings, args: argparse.Namespace) -> int:
    from mailagent.pipeline import drafting

    text = None
    if args.edit:
        try:
            text = Path(args.edit).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise Fail(f"cannot read {args.edit}: {exc}", EX_NOINPUT) from None
    _schema(settings)
    try:
        draft, outbound_id = drafting.approve(settings, args.id, _reviewer(args), text)
    except drafting.ReviewError as exc:
        raise Fail(str(exc)) from None
    print(f"draft {draft.id} approved by {draft.reviewed_by}; reply {outbound_id} queued")
    _deliver_now(settings, outbound_id)
    return 0


def _deliver_now(settings: Settings, outbound_id: int) -> None:
    """With a shared broker the workers send it; on one machine, send it from here right away."""
    if not settings.broker.in_process:
        from mailagent.worker import actors

        actors.deliver.send(outbound_id)
        return
    from mailagent.pipeline import outbox

    delivery = outbox.deliver(settings, outbound_id)
    if delivery is not None:
        print(f"reply {outbound_id}: {delivery.outcome.status} ({delivery.outcome.detail})")


def cmd_drafts_reject(settings: Settings, args: argparse.Namespace) -> int:
    from mailagent.pipeline import drafting

    _schema(settings)
    try:
        draft = drafting.reject(settings, args.id, _reviewer(args), args.reason)
    except drafting.ReviewError as exc:
        raise Fail(str(exc)) from None
    print(f"draft {draft.id} rejected by {draft.reviewed_by}: {draft.reject_reason}")
    return 0


def cmd_policy_check(settings: Settings, args: argparse.Namespace) -> int:
    from mailagent.policy import check

    directory = Path(args.dir or settings.policy.directory)
    problems = check(directory)
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} problem(s) in {directory}", file=sys.stderr)
        return 1
    print(f"{directory}: policy and fixtures are valid")
    return 0


def cmd_policy_test(settings: Settings, args: argparse.Namespace) -> int:
    from mailagent.policy import load_policy, run_fixtures
    from mailagent.tomlfile import FileError

    directory = Path(args.dir or settings.policy.directory)
    try:
        results = run_fixtures(load_policy(directory), directory / "tests")
    except FileError as exc:
        raise Fail(str(exc)) from None
    for result in results:
        print(result)
    failed = sum(not r.passed for r in results)
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


def cmd_policy_explain(settings: Settings, args: argparse.Namespace) -> int:
    from mailagent.policy import Decision, Facts, current_policy, explain

    draft = views.draft_model(_schema(settings), args.id)
    if draft.decision is None:
        raise Fail(f"draft {args.id} has no decision yet (state {draft.state})")
    decision = Decision(draft.decision, draft.rule or "", tuple(draft.reasons), draft.shadow)
    print(f"draft {draft.id} (policy version {draft.policy_version or 'unknown'})")
    print(explain(decision, Facts.from_dict(draft.facts), current_policy(settings)))
    return 0


def cmd_actions_list(settings: Settings, args: argparse.Namespace) -> int:
    rows = views.actions(_schema(settings), state=args.state, limit=args.limit)
    if args.json:
        _print_json(rows)
    else:
        views.print_table(rows, ["id", "conversation_id", "draft_id", "tool", "amount", "currency", "state", "decided_by"])
    return 0


def cmd_actions_show(settings: Settings, args: argparse.Namespace) -> int:
    print(views.action_detail(_schema(settings), args.id))
    return 0


def cmd_actions_decide(settings: Settings, args: argparse.Namespace) -> int:
    """A rep's verdict on a proposed action; the paused draft then continues (executing it once)."""
    from mailagent.actions import proposals

    url = _schema(settings)
    approve = args.sub == "approve"
    try:
        with db.session(url) as s:
            action = proposals.decide_by_rep(s, args.id, _reviewer(args), approve, getattr(args, "reason", "") or "")
            draft_id = action.draft_id
    except proposals.DecisionError as exc:
        raise Fail(str(exc)) from None
    print(f"action {args.id} {'approved' if approve else 'rejected'} by {_reviewer(args)}")
    _resume_now(settings, draft_id)
    return 0


def _resume_now(settings: Settings, draft_id: int) -> None:
    """With a shared broker the workers continue the draft; on one machine, continue it here."""
    if not settings.broker.in_process:
        from mailagent.worker import actors

        actors.resume_draft.send(draft_id)
        return
    from mailagent.pipeline import drafting

    outcome = drafting.resume_draft(settings, draft_id)
    if outcome.step is drafting.Step.WAITING:
        print(f"draft {draft_id} still waits for other actions")
    elif outcome.step is drafting.Step.DECIDED:
        draft = views.draft_model(settings.database.url, draft_id)
        print(f"draft {draft_id}: {draft.state} ({draft.rule})")
        if outcome.outbound_id is not None:
            _deliver_now(settings, outcome.outbound_id)


def cmd_conversations_takeover(settings: Settings, args: argparse.Namespace) -> int:
    from mailagent.pipeline import threads

    url = _schema(settings)
    rep = _reviewer(args)
    try:
        with db.session(url) as s:
            (threads.take if args.sub == "take" else threads.release)(s, args.id, rep)
    except threads.TakeoverError as exc:
        raise Fail(str(exc)) from None
    print(f"conversation {args.id} {'taken by ' + rep if args.sub == 'take' else 'released by ' + rep}")
    return 0


def cmd_audit_list(settings: Settings, args: argparse.Namespace) -> int:
    rows = views.audit(_schema(settings), conversation_id=args.conversation, limit=args.limit)
    if args.json:
        _print_json(rows)
    else:
        for row in rows:
            print(f"{row['at']}  {row['actor']:<28} {row['event']:<10} conversation={row['conversation_id']} "
                  f"draft={row['draft_id']} action={row['action_id']} {views._compact(row['details'], 160)}")
    return 0


def cmd_backend_seed(settings: Settings, args: argparse.Namespace) -> int:
    from mailagent.actions.backends.demo import seed

    counts = seed(_schema(settings), Path(args.file or settings.actions.demo_data))
    print("demo backend: " + ", ".join(f"{n} {name}" for name, n in counts.items()))
    return 0


def cmd_traces_show(settings: Settings, args: argparse.Namespace) -> int:
    print(views.trace_detail(_schema(settings), args.conversation_id))
    return 0


def cmd_run(settings: Settings, args: argparse.Namespace) -> int:
    from mailagent.worker.inprocess import InProcess

    schema.upgrade(settings.database.url)
    with InProcess(settings) as app:
        if args.until_idle:
            app.until_idle()
        else:
            app.forever()
    return 0


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    """Exec dramatiq's own CLI: it manages processes, threads and graceful SIGTERM."""
    if settings.broker.in_process:
        raise Fail("`worker` needs a shared broker: set [broker] url = \"redis://...\" "
                   "(or use `mailagent run` for everything in one process)", EX_CONFIG)
    _schema(settings)
    if settings.source != "(embedded defaults)":
        os.environ["MAILAGENT_CONFIG"] = str(Path(settings.source).resolve())
    argv = ["dramatiq", "mailagent.worker.actors", "--processes", str(args.processes or settings.worker.processes),
            "--threads", str(args.threads or settings.worker.threads)]
    os.execvp(sys.executable, [sys.executable, "-m", *argv])


def cmd_clock(settings: Settings, _args: argparse.Namespace) -> int:
    from apscheduler.schedulers.blocking import BlockingScheduler

    from mailagent.worker import clock
    from mailagent.worker import actors

    _schema(settings)
    scheduler = BlockingScheduler(timezone="UTC")
    clock.schedule(scheduler, settings, actors.poll_mailbox.send, actors.sweep.send)
    _stop_on_signals(lambda: scheduler.shutdown(wait=False))
    scheduler.start()
    return 0


def cmd_watch(settings: Settings, _args: argparse.Namespace) -> int:
    import threading

    from mailagent.worker import actors
    from mailagent.worker import watch

    stop = threading.Event()
    _stop_on_signals(stop.set)
    threads = watch.start(settings, actors.poll_mailbox.send, stop)
    if not threads:
        raise Fail("no mailbox has IMAP with idle = true: nothing to watch", EX_CONFIG)
    stop.wait()
    return 0


def _stop_on_signals(stop: Callable[[], None]) -> None:
    import signal

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop())


def cmd_web(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from mailagent.web.app import create_app

    _schema(settings)
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level="info")
    return 0


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    from mailagent.cli import demo

    return demo.main(Path(args.dir), args.smtp_port)


# --- parser ---------------------------------------------------------------------------------

def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mailagent", description="Self-hosted AI-assisted customer support over email.")
    p.add_argument("--config", help="config file (default: $MAILAGENT_CONFIG, ./config.toml, or built-in defaults)")
    p.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler: Handler, parent: Any = sub, **kw: Any) -> argparse.ArgumentParser:
        c = parent.add_parser(name, **kw)
        c.set_defaults(handler=handler)
        return c

    c = command("run", cmd_run, help="worker, clock and IDLE watchers in one process (in-process broker)")
    c.add_argument("--until-idle", action="store_true", help="process everything pending, then exit")
    c = command("worker", cmd_worker, help="dramatiq worker processes on the configured broker")
    c.add_argument("--processes", type=int)
    c.add_argument("--threads", type=int)
    command("clock", cmd_clock, help="schedule mailbox polls and the sweeper")
    command("watch", cmd_watch, help="hold IMAP IDLE and enqueue a poll when mail arrives")
    c = command("web", cmd_web, help="the HTTP app: health, metrics")
    c.add_argument("--host", default="127.0.0.1")
    c.add_argument("--port", type=int, default=8025)
    c = command("demo", cmd_demo, help="the whole flow on bundled sample mail, no setup")
    c.add_argument("--dir", default="mailagent-demo", help="where the demo keeps its database and config")
    c.add_argument("--smtp-port", type=int, default=2525, help="port of the local SMTP server the demo starts")

    c = command("ingest", cmd_ingest, help="store RFC 5322 messages from files or stdin (MTA pipe)")
    c.add_argument("files", nargs="*", metavar="FILE", help="one message per file; - or nothing for stdin")
    c.add_argument("--mailbox", help="the mailbox these messages were sent to (default: from their headers)")

    msgs = sub.add_parser("messages", help="stored inbound messages").add_subparsers(dest="sub", required=True)
    c = command("list", cmd_messages_list, msgs)
    c.add_argument("--json", action="store_true")
    c.add_argument("--limit", type=int, default=200)
    c = command("show", cmd_messages_show, msgs)
    c.add_argument("id", type=int)
    c.add_argument("--raw", action="store_true", help="print the stored bytes exactly")

    convs = sub.add_parser("conversations", help="threads").add_subparsers(dest="sub", required=True)
    c = command("list", cmd_conversations_list, convs)
    c.add_argument("--json", action="store_true")
    c.add_argument("--limit", type=int, default=200)
    c = command("show", cmd_conversations_show, convs)
    c.add_argument("id", type=int)
    for name, text in (("take", "a rep takes over: no auto-send, no auto-approval"), ("release", "hand back to the agent")):
        c = command(name, cmd_conversations_takeover, convs, help=text)
        c.add_argument("id", type=int)
        c.add_argument("--as", dest="reviewer")

    kb = sub.add_parser("kb", help="knowledge base").add_subparsers(dest="sub", required=True)
    command("sync", cmd_kb_sync, kb, help="load knowledge/*.md into the database")
    c = command("search", cmd_kb_search, kb, help="full-text search of the articles")
    c.add_argument("query", nargs="+")
    c.add_argument("--locale")
    c.add_argument("--limit", type=int, default=5)
    c.add_argument("--json", action="store_true")

    drafts = sub.add_parser("drafts", help="drafted replies and their review").add_subparsers(dest="sub", required=True)
    c = command("list", cmd_drafts_list, drafts)
    c.add_argument("--json", action="store_true")
    c.add_argument("--state", choices=["drafting", "held", "escalated", "sent", "rejected", "ignored", "superseded"])
    c.add_argument("--limit", type=int, default=200)
    c = command("show", cmd_drafts_show, drafts)
    c.add_argument("id", type=int)
    c = command("approve", cmd_drafts_approve, drafts, help="send a held draft, or your edit of it")
    c.add_argument("id", type=int)
    c.add_argument("--edit", metavar="FILE", help="send this text instead (kept as an edit for the learning loop)")
    c.add_argument("--as", dest="reviewer", help="who approves (default: $MAILAGENT_REVIEWER or $USER)")
    c = command("reject", cmd_drafts_reject, drafts)
    c.add_argument("id", type=int)
    c.add_argument("--reason", required=True)
    c.add_argument("--as", dest="reviewer")

    pol = sub.add_parser("policy", help="the policy files").add_subparsers(dest="sub", required=True)
    c = command("check", cmd_policy_check, pol, help="validate policy files and run their fixtures")
    c.add_argument("dir", nargs="?", help="default: [policy] directory")
    c = command("test", cmd_policy_test, pol, help="run the fixtures in DIR/tests and show each result")
    c.add_argument("dir", nargs="?")
    c = command("explain", cmd_policy_explain, pol, help="which rule decided a draft, and why")
    c.add_argument("id", type=int)

    acts = sub.add_parser("actions", help="proposed actions with side effects").add_subparsers(dest="sub", required=True)
    c = command("list", cmd_actions_list, acts)
    c.add_argument("--json", action="store_true")
    c.add_argument("--state", choices=["proposed", "approved", "rejected", "executed", "failed"])
    c.add_argument("--limit", type=int, default=200)
    c = command("show", cmd_actions_show, acts)
    c.add_argument("id", type=int)
    c = command("approve", cmd_actions_decide, acts, help="approve; the paused draft continues and runs it once")
    c.add_argument("id", type=int)
    c.add_argument("--as", dest="reviewer")
    c = command("reject", cmd_actions_decide, acts, help="reject; the agent writes a reply that fits")
    c.add_argument("id", type=int)
    c.add_argument("--reason", required=True)
    c.add_argument("--as", dest="reviewer")

    aud = sub.add_parser("audit", help="the append-only audit log").add_subparsers(dest="sub", required=True)
    c = command("list", cmd_audit_list, aud)
    c.add_argument("--json", action="store_true")
    c.add_argument("--conversation", type=int)
    c.add_argument("--limit", type=int, default=500)

    backend = sub.add_parser("backend", help="the actions backend").add_subparsers(dest="sub", required=True)
    c = command("seed", cmd_backend_seed, backend, help="load sample company data into the demo backend")
    c.add_argument("file", nargs="?", help="default: [actions] demo_data")

    traces = sub.add_parser("traces", help="agent runs, step by step").add_subparsers(dest="sub", required=True)
    c = command("show", cmd_traces_show, traces)
    c.add_argument("conversation_id", type=int)

    dbp = sub.add_parser("db", help="database schema").add_subparsers(dest="sub", required=True)
    command("upgrade", cmd_db_upgrade, dbp, help="apply migrations")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = config.use(config.load(args.config))
        return args.handler(settings, args)
    except ConfigError as exc:
        print(f"mailagent: configuration error:\n{exc}", file=sys.stderr)
        return EX_CONFIG
    except (Fail, views.NotFound) as exc:
        print(f"mailagent: {exc}", file=sys.stderr)
        return getattr(exc, "code", 1)
    except schema.SchemaError as exc:
        print(f"mailagent: {exc}", file=sys.stderr)
        return EX_TEMPFAIL if args.command == "ingest" else 1

