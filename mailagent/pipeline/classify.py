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

from mailagent.config import Settings
from mailagent.mail import loops
from mailagent.mail.dsn import DeliveryReport, delivery_report
from mailagent.mail.headers import envelope, first_address, read_headers
from mailagent.mail.parse import ParsedMail, ParseError, parse_tree
from mailagent.mail.sniff import not_mail
from mailagent.pipeline import bounces, sender, threads
from mailagent.store import db, messages
from mailagent.store.messages import Stored, Threaded

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Processed:
    message: Stored
    kind: str                            # mail.loops kind
    conversation: Threaded


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
    except db.DatabaseError:
        _uncount(url, message_id)    # storage trouble is not the message's fault: retried as it is
        raise
    except Exception as exc:
        _failed(url, message_id, f"{type(exc).__name__}: {exc}"[:2000])
        raise


def conversation_of(settings: Settings, message_id: int) -> int | None:
    """The conversation of a message processed already."""
    with db.reading(settings.database.url) as s:
        return messages.conversation_of(s, message_id)


def _claim(url: str, message_id: int, max_attempts: int) -> bytes | None:
    """Count an attempt and return the raw bytes; None when the message is not waiting, or when
    its attempts are spent (then it is marked failed)."""
    with db.session(url) as s:
        attempt = messages.count_attempt(s, message_id)
        if attempt is None:
            return None
        if attempt.attempts > max_attempts:
            error = (f"processing failed {attempt.attempts - 1} times; last error: "
                     f"{attempt.error or 'the worker stopped during processing'}")
            messages.fail(s, message_id, error)
            log.error("message %s: %s", message_id, error)
            return None
        return attempt.raw


def _uncount(url: str, message_id: int) -> None:
    """Give back the attempt a storage error cost (best effort: storage may still be down)."""
    try:
        with db.session(url) as s:
            messages.uncount(s, message_id)
    except db.DatabaseError:
        log.warning("message %s: could not give back an attempt lost to a storage error", message_id)


def _failed(url: str, message_id: int, error: str) -> None:
    log.exception("message %s: processing failed", message_id)
    with db.session(url) as s:
        messages.set_error(s, message_id, error)


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
        row = messages.lock_stored(s, message_id)
        if row is None:
            return None
        mailbox = settings.reply_mailbox(row.mailbox or found.mailbox)
        reported = found.report.original_ids if found.report else ()
        if found.report is not None:
            bounces.link(s, messages.orm(s, message_id), found.report)
        conversation = threads.assign(s, threads.Incoming(
            row, mailbox, found.from_addr, found.from_name, found.subject, found.sent_at, found.in_reply_to,
            found.references), window, also=reported)
        messages.processed(s, message_id, mailbox=mailbox, conversation_id=conversation.id, **_recorded(found),
                           **sender.fields(verdict))
        return Processed(row, found.kind, conversation)


def _recorded(found: Inspection) -> dict[str, Any]:
    """The message's columns from what its parse said (a message that could not be parsed keeps
    the defaults for its body: it has none)."""
    parsed = found.parsed
    return {
        "from_name": found.from_name, "from_addr": found.from_addr, "reply_to": found.reply_to,
        "subject": found.subject, "sent_at": found.sent_at, "in_reply_to": list(found.in_reply_to),
        "references": list(found.references), "parse_error": found.parse_error, "kind": found.kind,
        "kind_reason": found.kind_reason,
        "text": parsed.text if parsed else "", "reply_text": parsed.reply_text if parsed else "",
        "hidden_text": parsed.hidden_text if parsed else "", "quoted_text": parsed.quoted_text if parsed else "",
        "signature": parsed.signature if parsed else "", "defects": list(parsed.defects) if parsed else [],
        "attachments": [{"filename": a.filename, "content_type": a.content_type, "size": a.size}
                        for a in parsed.attachments] if parsed else [],
    }
