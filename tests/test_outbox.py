"""The outbox against a real SMTP server (aiosmtpd): sent at most once, failures kept, crashes
surfaced as `unknown`."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from email import message_from_bytes
from email.policy import default

import pytest
from freezegun import freeze_time
from imapclient.exceptions import IMAPClientError
from sqlalchemy import update

from mailagent.config import Settings
from mailagent.mail import smtp
from mailagent.pipeline import outbox, sweeper
from mailagent.store import db
from mailagent.store.models import Conversation, Message, Outbound, OutboundState, now

from .support.dovecot import Dovecot
from .support.smtpd import SmtpServer


def _queue(settings: Settings, approved_by: str | None = None, **parent: object) -> int:
    with db.session(settings.database.url) as s:
        conversation = Conversation(mailbox="support", customer_addr="alice@customer.example", subject="Invoice")
        s.add(conversation)
        s.flush()
        fields = dict(dedup_key="id:m1@c", message_id="m1@c", sha256="0", raw=b"", source="file",
                      from_addr="alice@customer.example", subject="Invoice for May",
                      references=["m0@c"], conversation_id=conversation.id)
        msg = Message(**{**fields, **parent})
        s.add(msg)
        s.flush()
        return outbox.queue_reply(s, settings, conversation.id, conversation.mailbox, outbox.Parent.of(msg),
                                  "Here it is.\n\nBest,\nSupport", approved_by).id


def _row(settings: Settings, outbound_id: int) -> Outbound:
    with db.session(settings.database.url) as s:
        return s.get(Outbound, outbound_id)


def _make_due(settings: Settings, outbound_id: int) -> None:
    """Let the retry delay pass without freezing the clock under asyncio."""
    with db.session(settings.database.url) as s:
        s.execute(update(Outbound).where(Outbound.id == outbound_id).values(next_attempt_at=now()))


def test_a_reply_is_threaded_and_marked_automatic(sqlite_url: str, settings_for) -> None:
    settings = settings_for(sqlite_url)
    row = _row(settings, _queue(settings, reply_to="billing@customer.example"))
    msg = message_from_bytes(row.raw, policy=default)
    assert msg["From"] == "Example Support <support@example.com>"
    assert msg["To"] == "billing@customer.example"                  # Reply-To wins over From
    assert msg["Subject"] == "Re: Invoice for May"
    assert msg["In-Reply-To"] == "<m1@c>"
    assert msg["References"] == "<m0@c> <m1@c>"
    assert msg["Message-ID"] == f"<{row.message_id}>" and row.message_id.endswith("@example.com")
    assert msg["Auto-Submitted"] == "auto-replied"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    assert "Here it is." in msg.get_body(("plain",)).get_content()


def test_a_reply_a_human_approved_is_not_auto_submitted(sqlite_url: str, settings_for) -> None:
    settings = settings_for(sqlite_url)
    row = _row(settings, _queue(settings, approved_by="rep@example.com"))
    assert "Auto-Submitted" not in message_from_bytes(row.raw, policy=default)
    assert row.approved_by == "rep@example.com"


def test_long_reference_chains_keep_the_root_and_the_newest() -> None:
    chain = smtp.references_chain(tuple(f"r{i}@x" for i in range(50)), "parent@x")
    assert len(chain) == smtp.MAX_REFERENCES and chain[0] == "r0@x" and chain[-1] == "parent@x"


def test_sent_exactly_the_composed_bytes(sqlite_url: str, settings_for, smtp_server: SmtpServer) -> None:
    settings = settings_for(sqlite_url)
    outbound_id = _queue(settings)
    delivery = outbox.deliver(settings, outbound_id)
    assert delivery.outcome.status == "sent"
    row = _row(settings, outbound_id)
    assert row.state == OutboundState.SENT and row.smtp_response.startswith("250")
    [got] = smtp_server.received
    assert got.recipients == ["alice@customer.example"] and got.sender == "support@example.com"
    assert message_from_bytes(got.data)["Message-ID"] == f"<{row.message_id}>"
    assert outbox.deliver(settings, outbound_id) is None          # a redelivered message: nothing
    assert len(smtp_server.received) == 1


def test_smtp_down_then_up_sends_exactly_once(sqlite_url: str, settings_for, smtp_server: SmtpServer) -> None:
    settings = settings_for(sqlite_url)
    outbound_id = _queue(settings)
    smtp_server.stop()
    delivery = outbox.deliver(settings, outbound_id)
    assert delivery.outcome.status == "retry" and delivery.retry_in == timedelta(seconds=1)
    row = _row(settings, outbound_id)
    assert row.state == OutboundState.QUEUED and row.attempts == 1 and "Connect" in row.last_error
    assert outbox.deliver(settings, outbound_id) is None          # not due yet
    _make_due(settings, outbound_id)
    assert outbox.deliver(settings, outbound_id).retry_in == timedelta(seconds=2)   # backoff doubles
    smtp_server.start()
    _make_due(settings, outbound_id)
    assert outbox.deliver(settings, outbound_id).outcome.status == "sent"
    assert outbox.deliver(settings, outbound_id) is None
    assert len(smtp_server.received) == 1 and _row(settings, outbound_id).attempts == 3


def test_smtp_5xx_fails_and_keeps_the_answer(sqlite_url: str, settings_for, smtp_server: SmtpServer) -> None:
    settings = settings_for(sqlite_url)
    smtp_server.handler.data_answer = "554 5.7.1 Message rejected as spam"
    outbound_id = _queue(settings)
    assert outbox.deliver(settings, outbound_id).retry_in is None
    row = _row(settings, outbound_id)
    assert row.state == OutboundState.FAILED and row.last_error == "554 5.7.1 Message rejected as spam"


def test_smtp_4xx_is_retried(sqlite_url: str, settings_for, smtp_server: SmtpServer) -> None:
    settings = settings_for(sqlite_url)
    smtp_server.handler.data_answer = "451 4.3.0 Try again later"
    outbound_id = _queue(settings)
    assert outbox.deliver(settings, outbound_id).retry_in is not None
    assert _row(settings, outbound_id).state == OutboundState.QUEUED
    smtp_server.handler.data_answer = None
    _make_due(settings, outbound_id)
    assert outbox.deliver(settings, outbound_id).outcome.status == "sent"


def test_retries_end_in_failed_after_max_attempts(sqlite_url: str, settings_for, smtp_server: SmtpServer) -> None:
    settings = settings_for(sqlite_url)
    settings = settings.model_copy(update={"outbox": settings.outbox.model_copy(update={"max_attempts": 2})})
    smtp_server.stop()
    outbound_id = _queue(settings)
    outbox.deliver(settings, outbound_id)
    _make_due(settings, outbound_id)
    assert outbox.deliver(settings, outbound_id).retry_in is None
    row = _row(settings, outbound_id)
    assert row.state == OutboundState.FAILED and row.last_error.startswith("gave up after 2 attempts")


def test_partial_and_total_recipient_refusals(smtp_server: SmtpServer, settings_for, sqlite_url: str) -> None:
    cfg = settings_for(sqlite_url).mailbox("support").smtp
    smtp_server.handler.refuse = {"gone@x.example": "550 5.1.1 No such user", "full@x.example": "452 4.2.2 Mailbox full"}
    partial = asyncio.run(smtp.send(cfg, "support@example.com", ["ok@x.example", "gone@x.example"], b"Subject: x\r\n\r\nx\r\n", deadline=30))
    assert partial.status == "sent" and partial.refused == {"gone@x.example": "550 5.1.1 No such user"}
    assert smtp_server.received[0].recipients == ["ok@x.example"]
    final = asyncio.run(smtp.send(cfg, "support@example.com", ["gone@x.example"], b"Subject: x\r\n\r\nx\r\n", deadline=30))
    assert final.status == "failed" and final.refused
    temporary = asyncio.run(smtp.send(cfg, "support@example.com", ["full@x.example"], b"Subject: x\r\n\r\nx\r\n", deadline=30))
    assert temporary.status == "retry"


def test_a_crash_after_sending_began_ends_unknown_and_is_never_resent(sqlite_url: str, settings_for,
                                                                      smtp_server: SmtpServer) -> None:
    settings = settings_for(sqlite_url)
    outbound_id = _queue(settings)
    assert outbox._claim(sqlite_url, outbound_id) is not None      # the worker dies right after this
    assert outbox.deliver(settings, outbound_id) is None             # the redelivered message
    assert sweeper.find_due(settings, timedelta(0)).unknown == []    # too early to tell
    with freeze_time(now() + timedelta(seconds=settings.outbox.send_timeout_seconds * 2 + 1)):
        due = sweeper.find_due(settings, timedelta(0))
    assert due.unknown == [outbound_id] and outbound_id not in due.deliver
    row = _row(settings, outbound_id)
    assert row.state == OutboundState.UNKNOWN and "may or may not" in row.last_error
    assert outbox.deliver(settings, outbound_id) is None
    assert smtp_server.received == []


def test_connection_lost_during_data_is_unknown(sqlite_url: str, settings_for, smtp_server: SmtpServer) -> None:
    settings = settings_for(sqlite_url)
    smtp_server.handler.drop_in_data = True
    outbound_id = _queue(settings)
    assert outbox.deliver(settings, outbound_id).outcome.status == "unknown"
    assert _row(settings, outbound_id).state == OutboundState.UNKNOWN
    assert len(smtp_server.received) == 1       # the server did get it: resending would duplicate


def test_sent_replies_are_saved_to_the_sent_folder_once(sqlite_url: str, settings_for, dovecot: Dovecot,
                                                       imap_user: str) -> None:
    settings = settings_for(sqlite_url, imap_user, sent_folder="Sent")
    dovecot.append(imap_user, "Sent")
    outbound_id = _queue(settings)
    outbox.deliver(settings, outbound_id)
    assert sweeper.find_due(settings, timedelta(0)).save_to_sent == [outbound_id]
    assert outbox.save_to_sent(settings, outbound_id)
    assert not outbox.save_to_sent(settings, outbound_id)
    assert sweeper.find_due(settings, timedelta(0)).save_to_sent == []
    with dovecot.client(imap_user) as c:
        c.select_folder("Sent")
        [uid] = c.search(["ALL"])
        assert c.fetch([uid], ["BODY.PEEK[]"])[uid][b"BODY[]"] == _row(settings, outbound_id).raw


def test_a_missing_sent_folder_is_created(sqlite_url: str, settings_for, dovecot: Dovecot, imap_user: str) -> None:
    """The APPEND failed with [TRYCREATE] on every retry, forever."""
    settings = settings_for(sqlite_url, imap_user, sent_folder="Sent Items")
    outbound_id = _queue(settings)
    outbox.deliver(settings, outbound_id)
    assert outbox.save_to_sent(settings, outbound_id)
    with dovecot.client(imap_user) as c:
        assert c.select_folder("Sent Items")[b"EXISTS"] == 1


def test_a_sent_folder_the_server_refuses_is_named_in_the_error(sqlite_url: str, settings_for, dovecot: Dovecot,
                                                                imap_user: str) -> None:
    settings = settings_for(sqlite_url, imap_user, sent_folder="Sent/2026")   # Dovecot's separator is "."
    outbound_id = _queue(settings)
    outbox.deliver(settings, outbound_id)
    with pytest.raises(IMAPClientError, match="Sent/2026"):
        outbox.save_to_sent(settings, outbound_id)
    assert not _row(settings, outbound_id).saved_to_sent
