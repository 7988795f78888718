"""Short commands load what they need only: an MTA-piped `ingest`, `--help` and the list commands
run without the ORM, the broker, the agent or the migrations (bench/startup.py times them); the
plain-SQL rows they print are the ORM's rows exactly. (With a Redis broker the pipe loads dramatiq
and redis to hand its message over: that is its work, not start-up.)"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlmodel import select

from mailagent.cli import rows
from mailagent.pipeline.ingest import Inbound, store_many
from mailagent.store import db, listings
from mailagent.store.models import Conversation, Draft, Message, Outbound

from .support.mails import mail

HEAVY = ["sqlalchemy", "sqlmodel", "alembic", "openai", "agents", "dramatiq", "redis", "imapclient", "jinja2"]

PROBE = f"""
import json, sys
from mailagent.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
print(json.dumps({{"code": code, "loaded": [m for m in {HEAVY!r} if m in sys.modules]}}), file=sys.stderr)
"""


@pytest.mark.parametrize("argv", [["--help"], ["ingest"], ["drafts", "list"], ["conversations", "list", "--json"],
                                  ["messages", "list"]])
def test_short_commands_import_no_orm_broker_agent_or_migrations(any_db_url: str, tmp_path: Path,
                                                                  argv: list[str]) -> None:
    config_file = tmp_path / "config.toml"
    config_file.write_text(f'[database]\nurl = "{any_db_url}"\n')
    proc = subprocess.run([sys.executable, "-c", PROBE, "--config", str(config_file), *argv],
                          input=mail(1) if argv == ["ingest"] else b"", capture_output=True, timeout=60, check=False)
    outcome = json.loads(proc.stderr.decode().strip().splitlines()[-1])
    assert outcome == {"code": 0, "loaded": []}, proc.stderr.decode()
    if argv == ["ingest"]:
        assert [m.source for m in listings.messages(any_db_url, limit=5)] == ["pipe"]


def test_a_new_database_still_gets_its_schema_on_first_ingest(tmp_path: Path) -> None:
    """The plain-SQL check falls back to the migrations when there is nothing yet."""
    url = f"sqlite:///{tmp_path}/sub/new.db"
    config_file = tmp_path / "config.toml"
    config_file.write_text(f'[database]\nurl = "{url}"\n')
    proc = subprocess.run([sys.executable, "-m", "mailagent", "--config", str(config_file), "ingest"],
                          input=mail(1), capture_output=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr.decode()
    assert len(listings.messages(url, limit=5)) == 1
    db.dispose(url)


def test_plain_listings_print_the_orm_rows_exactly(any_db_url: str) -> None:
    [first, second] = store_many(any_db_url, [Inbound(mail(1), "pipe", "support"), Inbound(mail(2), "file")])
    assert store_many(any_db_url, [Inbound(mail(1), "pipe")]) == [None]          # a duplicate
    decided = datetime(2026, 11, 22, 9, 30, 15, 123456, tzinfo=UTC)
    with db.session(any_db_url) as s:
        conversation = Conversation(mailbox="support", customer_addr="alice@customer.example", customer_name="Ålice",
                                    subject="Refund", taken_by="rep@cli")
        s.add(conversation)
        s.flush()
        s.add(Draft(conversation_id=conversation.id, message_id=first, state="held", confidence=0.75,
                    needs_human=True, shadow=True, cited=["refunds.en"], flags=["refund"], reasons=["amount > 50"],
                    usage={"input_tokens": 12}, decision="hold", decided_at=decided))
        s.add(Draft(conversation_id=conversation.id, message_id=second, state="sent"))
        s.add(Outbound(conversation_id=conversation.id, mailbox="support", message_id="<r1@x>", sender="s@x",
                       recipients=["alice@customer.example"], subject="Re: Refund", body_text="ok", raw=b"x"))
    with db.reading(any_db_url) as s:
        orm_messages = [rows.message_row(m) for m in s.exec(select(Message).order_by(Message.id)).all()]
        orm_drafts = [rows.draft_row(d) for d in s.exec(select(Draft).order_by(Draft.id)).all()]
        orm_conversation = rows.conversation_row(s.exec(select(Conversation)).one(), 0, 1)
    assert [rows.message_row(m) for m in listings.messages(any_db_url, limit=10)] == orm_messages
    assert orm_messages[0]["duplicates"] == 1 and orm_messages[0]["received_at"]
    assert [rows.draft_row(*found) for found in listings.drafts(any_db_url, None, limit=10)] == orm_drafts
    assert orm_drafts[0]["shadow"] is True and orm_drafts[0]["decided_at"] == "2026-11-22T09:30:15+00:00"
    assert [rows.draft_row(*found) for found in listings.drafts(any_db_url, "held", limit=10)] == orm_drafts[:1]
    assert [rows.draft_row(*found) for found in listings.drafts(any_db_url, None, limit=1)] == orm_drafts[1:]
    assert [rows.conversation_row(*found) for found in listings.conversations(any_db_url, limit=10)] == [
        orm_conversation]
