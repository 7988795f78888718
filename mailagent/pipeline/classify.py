"""From a stored message to a classified message in its conversation.

`inspect` is the pure part: the message is parsed once, and loop detection, the envelope and the
mailbox it was sent to are all read from that one parse. It runs before the transaction; the
short transaction then records the result and the thread. A message that cannot be parsed keeps
its error and is threaded all the same (from its header block), so a human sees it; so does input
that is not mail at all (an executable, random bytes), which is never parsed as mail.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import defer
from sqlmodel import select

from mailagent.config import Settings
from mailagent.mail import loops
from mailagent.mail.dsn import DeliveryReport, delivery_report
from mailagent.mail.headers import envelope, first_address, read_headers
from mailagent.mail.parse import ParsedMail, ParseError, parse_tree
from mailagent.mail.sniff import not_mail
from mailagent.pipeline import bounces, sender, threads
from mailagent.store import db
from mailagent.store.models import Conversation, Message, MessageState, now

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Processed:
    message: Message
    conversation: Conversation


@dataclass(frozen=True)
class Inspection:
    """What one parse of a message says, ready to be stored on its row."""

    from_name: str
    from_addr: str
    reply_to: str
    subject: str
    sent_at: datetime | None
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    kind: str
    kind_reason: str
    parsed: ParsedMail | None
    parse_error: str | None
    mailbox: str | None                  # the configured mailbox it was sent to, if the headers say
    report: DeliveryReport | None = None  # a bounce's report: which message it is about, and why


def inspect(raw: bytes, *, own_addresses: Collection[str], mailboxes: Mapping[str, str]) -> Inspection:
    """Parse once, classify, and read the envelope. `mailboxes` maps our addresses to mailbox
    names (for mail piped or imported without one)."""
    try:
        if reason := not_mail(raw):
            raise ParseError(reason)          # stored and shown to a person, never read by a model
        parsed, tree = parse_tree(raw)
        error = None
    except Exception as exc:  # noqa: BLE001 - any failure is recorded on the message, never raised
        parsed, error = None, f"{type(exc).__name__}: {exc}"
        tree = read_headers(raw)
    verdict = loops.classify(tree, own_addresses=own_addresses)
    candidates = [first_address(tree.get(h))[1] for h in ("Delivered-To", "X-Original-To")]
    if parsed is not None:
        candidates += [*parsed.to, *parsed.cc]
        fields: dict[str, Any] = dict(
            from_name=parsed.from_name, from_addr=parsed.from_addr,
            reply_to=parsed.reply_to[0] if parsed.reply_to else "", subject=parsed.subject, sent_at=parsed.date,
            in_reply_to=parsed.in_reply_to, references=parsed.references)
    else:
        env = envelope(raw)
        fields = dict(from_name=env.from_name, from_addr=env.from_addr, reply_to=env.reply_to, subject=env.subject,
                      sent_at=env.date, in_reply_to=env.in_reply_to, references=env.references)
    mailbox = next((mailboxes[a] for a in candidates if a in mailboxes), None)
    report = delivery_report(tree) if verdict.kind is loops.Kind.BOUNCE else None
    return Inspection(**fields, kind=verdict.kind.value, kind_reason=verdict.reason, parsed=parsed,
                      parse_error=error, mailbox=mailbox, report=report)


def process(settings: Settings, message_id: int) -> Processed | None:
    """Parse, classify and thread one stored message; None if it was already processed (or
    failed). Each call is an attempt, counted before the work: a message whose processing keeps
    failing, or kills its worker, ends `failed` with the reason after `[worker] max_attempts`,
    never retried forever (a poison message)."""
    url = settings.database.url
    claimed = _claim(url, message_id, settings.worker.max_attempts)
    if claimed is None:
        return None
    try:
        return _process(settings, message_id, claimed)
    except SQLAlchemyError:
        _uncount(url, message_id)    # storage trouble is not the message's fault: retried as it is
        raise
    except Exception as exc:
        _failed(url, message_id, f"{type(exc).__name__}: {exc}"[:2000])
        raise


def conversation_of(settings: Settings, message_id: int) -> int | None:
    """The conversation of a message processed already."""
    with db.reading(settings.database.url) as s:
        return s.exec(select(Message.conversation_id).where(
            Message.id == message_id, Message.state == MessageState.PROCESSED)).first()


def _claim(url: str, message_id: int, max_attempts: int) -> bytes | None:
    """Count an attempt and return the raw bytes; None when the message is not waiting, or when
    its attempts are spent (then it is marked failed)."""
    with db.session(url) as s:
        attempts = s.execute(update(Message).where(Message.id == message_id, Message.state == MessageState.STORED)
                             .values(attempts=Message.attempts + 1).returning(Message.attempts)).scalar()
        if attempts is None:
            return None
        if attempts > max_attempts:
            msg = s.get(Message, message_id, options=[defer(Message.raw)])  # type: ignore[arg-type]
            assert msg is not None
            msg.state, msg.processed_at = MessageState.FAILED, now()
            msg.error = (f"processing failed {attempts - 1} times; last error: "
                         f"{msg.error or 'the worker stopped during processing'}")
            log.error("message %s: %s", message_id, msg.error)
            return None
        return s.exec(select(Message.raw).where(Message.id == message_id)).one()


def _uncount(url: str, message_id: int) -> None:
    """Give back the attempt a storage error cost (best effort: storage may still be down)."""
    try:
        with db.session(url) as s:
            s.execute(update(Message).where(Message.id == message_id, Message.attempts > 0)
                      .values(attempts=Message.attempts - 1))
    except SQLAlchemyError:
        log.warning("message %s: could not give back an attempt lost to a storage error", message_id)


def _failed(url: str, message_id: int, error: str) -> None:
    log.exception("message %s: processing failed", message_id)
    with db.session(url) as s:
        s.execute(update(Message).where(Message.id == message_id).values(error=error))


def _process(settings: Settings, message_id: int, raw: bytes) -> Processed | None:
    url = settings.database.url
    found = inspect(raw, own_addresses=settings.own_addresses,
                    mailboxes={m.address: name for name, m in settings.mailboxes.items()})
    if found.parse_error:
        log.warning("message %s could not be parsed: %s", message_id, found.parse_error)
    verdict = sender.check(settings, raw)          # may look up DKIM keys: outside the transaction
    window = timedelta(days=settings.ingest.subject_window_days)
    with db.session(url) as s:
        db.lock(s, "threading")   # first: threading may update other messages' rows too
        msg = s.get(Message, message_id, with_for_update=True, options=[defer(Message.raw)])  # type: ignore[arg-type]
        if msg is None or msg.state != MessageState.STORED:
            return None
        _record(msg, found)
        msg.mailbox = settings.reply_mailbox(msg.mailbox or found.mailbox)
        sender.record(msg, verdict)
        reported = found.report.original_ids if found.report else ()
        if found.report is not None:
            bounces.link(s, msg, found.report)
        conversation = threads.assign(s, msg, window, also=reported)
        msg.state, msg.processed_at, msg.error = MessageState.PROCESSED, now(), None
        return Processed(msg, conversation)


def _record(msg: Message, found: Inspection) -> None:
    msg.from_name, msg.from_addr, msg.reply_to, msg.subject = found.from_name, found.from_addr, found.reply_to, \
        found.subject
    msg.sent_at, msg.in_reply_to, msg.references = found.sent_at, list(found.in_reply_to), list(found.references)
    if (parsed := found.parsed) is not None:
        msg.text, msg.reply_text, msg.hidden_text = parsed.text, parsed.reply_text, parsed.hidden_text
        msg.quoted_text, msg.signature = parsed.quoted_text, parsed.signature
        msg.attachments = [{"filename": a.filename, "content_type": a.content_type, "size": a.size}
                           for a in parsed.attachments]
        msg.defects = list(parsed.defects)
    msg.parse_error = found.parse_error
    msg.kind, msg.kind_reason = found.kind, found.kind_reason
