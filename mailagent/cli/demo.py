"""`mailagent demo`: the whole flow on the bundled sample mail, with nothing to set up.

It writes a config into its own folder (SQLite, in-process broker, offline model, the shipped
policy), syncs the sample knowledge base, starts a local SMTP server to receive what is
auto-sent, ingests `examples/inbox/`, runs everything until idle, and prints what happened to
each message and the commands to look further.
"""

from __future__ import annotations

import shutil
import time
from collections import Counter, defaultdict
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Sink
from sqlmodel import select

from mailagent import config
from mailagent.actions.backends.demo import seed
from mailagent.config import DATA
from mailagent.knowledge.search import sync
from mailagent.pipeline import ingest
from mailagent.store import db, schema
from mailagent.store.models import Action, Draft, Message, Outbound, SpanRecord
from mailagent.worker.inprocess import InProcess

INBOX = DATA / "examples" / "inbox"

CONFIG = """\
# Written by `mailagent demo`. Use it to look around, e.g.
#   mailagent --config {dir}/config.toml drafts list --state held
[database]
url = "sqlite:///mailagent.db"

[broker]
url = "memory://"

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
    config_path.write_text(CONFIG.format(dir=directory, knowledge=DATA / "knowledge",
                                         policies=DATA / "policies", smtp_port=smtp_port))
    settings = config.use(config.load(config_path))
    url = settings.database.url

    _say(f"[1/5] database: {db.safe_url(url)}")
    schema.upgrade(url)
    result = sync(url, Path(settings.knowledge.directory))
    counts = seed(url, Path(settings.actions.demo_data))
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
            app.until_idle()
    finally:
        sink.stop()
    _say(f"[5/5] done in {time.monotonic() - started:.1f} s")
    _summary(url, config_path, smtp_port)
    return 0


def _summary(url: str, config_path: Path, smtp_port: int) -> None:
    with db.session(url) as s:
        messages = {m.id: m for m in s.exec(select(Message))}
        drafts = s.exec(select(Draft).order_by(Draft.id)).all()
        sent = {o.id: o for o in s.exec(select(Outbound))}
        actions = s.exec(select(Action).order_by(Action.id)).all()
        tools = Counter(s.exec(select(SpanRecord.name).where(SpanRecord.kind == "function")))
    groups: dict[str, list[str]] = defaultdict(list)
    for d in drafts:
        m = messages[d.message_id]
        label = "auto-sent" if d.state == "sent" and d.outbound_id and sent[d.outbound_id].approved_by is None else d.state
        why = d.reasons[-1] if d.reasons else ""
        if d.state == "ignored":
            why = f"{m.kind}: {m.kind_reason}"
        elif d.flags:
            why = f"flagged {', '.join(d.flags)}: {d.needs_human_reason}"
        elif d.state == "waiting":
            why = "; ".join(f"action {a.id}: {a.tool} {a.amount or ''} {a.currency or ''}".rstrip()
                            for a in actions if a.draft_id == d.id and a.state == "proposed")
        groups[label].append(f"#{d.id:<3} {m.from_addr[:34]:34} {m.subject[:44]:44} {why}")
    superseded = len(groups.pop("superseded", []))
    automated = len(groups.get("ignored", []))
    _say(f"\nReceived {len(messages)} messages: {len(drafts) - superseded - automated} turns from customers, "
         f"{automated} automated (never answered); {superseded} drafts superseded by a later message.")
    for label in ("auto-sent", "waiting", "held", "escalated", "ignored"):
        rows = groups.get(label, [])
        _say(f"\n{label.upper()} ({len(rows)})")
        for row in rows:
            _say(f"  {row}")
    delivered = sum(o.state == "sent" for o in sent.values())
    _say(f"\n{delivered} replies delivered to the local SMTP server. Tools the agent called: "
         + ", ".join(f"{name} x{n}" for name, n in tools.most_common()) + ".")
    cli = f"mailagent --config {config_path}"
    waiting = [a for a in actions if a.state == "proposed"]
    _say(f"\nLook further:\n  {cli} drafts list --state held\n  {cli} drafts show ID\n"
         f"  {cli} policy explain ID\n  {cli} traces show CONVERSATION_ID\n  {cli} actions list")
    _say(f"\nSend replies on (they need an SMTP server on port {smtp_port}; this one prints what it gets):\n"
         f"  python -m aiosmtpd -n -l 127.0.0.1:{smtp_port} &\n"
         f"  {cli} drafts approve ID [--edit FILE]")
    if waiting:
        _say(f"  {cli} actions approve {waiting[0].id}     (runs the {waiting[0].tool} once, then the reply goes out)")
