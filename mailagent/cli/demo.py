"""`mailagent demo`: the whole flow on the bundled sample mail, with nothing to set up.

It writes a config into its own folder (SQLite, in-process broker, offline model, the shipped
policy), syncs the sample knowledge base, starts a local SMTP server to receive what is
auto-sent, ingests `examples/inbox/`, runs everything until idle, and prints what happened to
each message and the commands to look further.
"""

from __future__ import annotations

import shlex
import shutil
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Sink

from mailagent import config
from mailagent.actions.backends import demo_url
from mailagent.actions.backends.demo import seed
from mailagent.cli.common import command_line
from mailagent.config import DATA
from mailagent.knowledge.search import sync
from mailagent.pipeline import ingest
from mailagent.store import db, schema, traces, views
from mailagent.store.models import Action, Draft, Message, Outbound
from mailagent.worker.inprocess import InProcess

INBOX = DATA / "examples" / "inbox"

CONFIG = """\
# Written by `mailagent demo`. Use it to look around, e.g.
#   {cli} drafts list --state held
[database]
url = "sqlite:///mailagent.db"

[broker]
url = "memory://"

[worker]
# One at a time: the same ids on every run, so the README's examples name real rows.
threads = 1
inflight = 1

[model]
provider = "offline"

[agent]
company = "Nimbus Notes"
sign_off = "Best regards,\\nThe Nimbus Notes support team"
docs_url = "https://docs.nimbusnotes.example"
status_page = "https://status.nimbusnotes.example"
allowed_link_domains = ["nimbusnotes.example"]

[knowledge]
directory = "{knowledge}"

[policy]
directory = "{policies}"

[ingest]
# The sample mail carries the verdicts of our receiving MTA (RFC 8601 Authentication-Results).
trusted_authserv_ids = ["mx1.nimbusnotes.example"]

[mailboxes.support]
address = "support@nimbusnotes.example"
display_name = "Nimbus Notes Support"

[mailboxes.support.smtp]
# A local SMTP server: `mailagent demo` runs one while it works. Point this at your provider
# to send for real.
host = "127.0.0.1"
port = {smtp_port}
security = "none"
"""


def _say(text: str = "") -> None:
    print(text, flush=True)


def main(directory: Path, smtp_port: int = 2525) -> int:
    started = time.monotonic()
    directory = directory.resolve()
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    config_path = directory / "config.toml"
    config_path.write_text(CONFIG.format(cli=command_line(directory / "config.toml"), knowledge=DATA / "knowledge",
                                         policies=DATA / "policies", smtp_port=smtp_port))
    settings = config.use(config.load(config_path))
    url = settings.database.url

    _say(f"[1/5] database: {db.safe_url(url)}")
    schema.upgrade(url)
    result = sync(url, Path(settings.knowledge.directory))
    counts = seed(demo_url(settings), Path(settings.actions.demo_data))
    _say(f"[2/5] knowledge base: {result.added} articles; demo backend: "
         + ", ".join(f"{n} {name}" for name, n in counts.items()))
    files = sorted(INBOX.glob("*.eml"))
    ingest.store_many(url, [ingest.Inbound(f.read_bytes(), "file", "support") for f in files])
    _say(f"[3/5] inbox: {len(files)} sample messages from {INBOX}")
    sink = Controller(Sink(), hostname="127.0.0.1", port=smtp_port)
    sink.start()
    _say(f"[4/5] local SMTP server on 127.0.0.1:{smtp_port}; drafting with the offline model ...")
    try:
        with InProcess(settings) as app:
            failures = app.until_idle()
    finally:
        sink.stop()
    for failure in failures:
        _say(f"failed: {failure.line()}")
    _say(f"[5/5] done in {time.monotonic() - started:.1f} s")
    _summary(url, config_path, smtp_port)
    return 1 if failures else 0


def _summary(url: str, config_path: Path, smtp_port: int) -> None:
    with db.session(url) as s:
        messages = {m.id: m for m in views.every(s, Message)}
        drafts = views.every(s, Draft)
        sent = {o.id: o for o in views.every(s, Outbound)}
        actions = views.every(s, Action)
        tools = Counter(traces.tool_calls(s))
    groups: dict[str, list[str]] = defaultdict(list)
    for d in drafts:
        m = messages[d.message_id]
        if d.state == "ignored":
            continue      # automated mail is listed from its messages: whether it got a draft of its own
                          # depends on what shares its conversation and on timing
        label = "auto-sent" if d.state == "sent" and d.outbound_id and sent[d.outbound_id].approved_by is None else d.state
        why = d.reasons[-1] if d.reasons else ""
        if d.flags:
            why = f"flagged {', '.join(d.flags)}: {d.needs_human_reason}"
        elif d.state == "waiting":
            why = "; ".join(f"action {a.id}: {a.tool} {a.amount or ''} {a.currency or ''}".rstrip()
                            + (f" ({a.reasons[-1]})" if len(a.reasons) > 1 else "")
                            for a in actions if a.draft_id == d.id and a.state == "proposed")
        groups[label].append(f"#{d.id:<3} {m.from_addr[:34]:34} {m.subject[:44]:44} {why}")
    for m in messages.values():
        if m.kind != "normal":
            groups["ignored"].append(f"m{m.id:<3} {m.from_addr[:34]:34} {m.subject[:44]:44} {m.kind}: {m.kind_reason}")
    superseded = len(groups.pop("superseded", []))
    automated = len(groups["ignored"])
    turns = sum(len(rows) for label, rows in groups.items() if label != "ignored")
    _say(f"\nReceived {len(messages)} messages: {turns} turns from customers, "
         f"{automated} automated (never answered); {superseded} drafts superseded by a later message.")
    for label in ("auto-sent", "waiting", "held", "escalated", "ignored"):
        rows = groups.get(label, [])
        _say(f"\n{label.upper()} ({len(rows)})")
        for row in rows:
            _say(f"  {row}")
    delivered = sum(o.state == "sent" for o in sent.values())
    _say(f"\n{delivered} replies delivered to the local SMTP server. Tools the agent called: "
         + ", ".join(f"{name} x{n}" for name, n in tools.most_common()) + ".")
    held = [d for d in drafts if d.state == "held"]
    _say("\nLook further (the commands work as printed, from any folder):")
    for line in next_steps(config_path, smtp_port, held[0] if held else None, [a for a in actions if a.state == "proposed"]):
        _say(f"  {line}")


def next_steps(config_path: Path, smtp_port: int, held: Draft | None, waiting: list[Action]) -> list[str]:
    """Commands to look further, with real ids from this run."""
    cli = command_line(config_path)
    lines = [f"{cli} drafts list --state held"]
    if held is not None:
        lines += [f"{cli} drafts show {held.id}", f"{cli} policy explain {held.id}",
                  f"{cli} traces show {held.conversation_id}"]
    lines += [f"{cli} actions list",
              f"# to send, an SMTP server on port {smtp_port} (this one prints what it gets):",
              f"{shlex.quote(sys.executable)} -m aiosmtpd -n -l 127.0.0.1:{smtp_port} &"]
    if held is not None:
        lines.append(f"{cli} drafts approve {held.id} --as you@example     # --edit FILE sends your text instead")
    if waiting:
        # Suggest one no rule flagged as doubtful (its reasons then say only that no rule matched).
        clear = next((a for a in waiting if len(a.reasons) <= 1), waiting[0])
        lines.append(f"{cli} actions approve {clear.id} --as you@example     "
                     f"# runs the {clear.tool} once, then shows you the reply to send")
    return lines
