"""From a stored message to a classified message in its conversation.

The expensive part, the full MIME parse, runs before the transaction; the short transaction then
records the result, the verdict on automated mail and the thread. A message that cannot be
parsed keeps its error and is threaded all the same, so a human sees it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from email import message_from_bytes
from email.policy import compat32

from mailagent.config import Settings
from mailagent.mail import loops
from mailagent.mail.headers import envelope, first_address, read_headers
from mailagent.mail.parse import ParsedMail, parse
from mailagent.pipeline import threads
from mailagent.store import db
from mailagent.store.models import Conversation, Message, MessageState, now

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Processed:
    message: Message
    conversation: Conversation


def _mailbox_for(settings: Settings, raw: bytes, parsed: ParsedMail | None) -> str | None:
    """Which configured mailbox a piped or imported message was sent to."""
    headers = read_headers(raw)
    candidates = [first_address(headers.get(h))[1] for h in ("Delivered-To", "X-Original-To")]
    if parsed is not None:
        candidates += [*parsed.to, *parsed.cc]
    by_address = {m.address: name for name, m in settings.mailboxes.items()}
    return next((by_address[a] for a in candidates if a in by_address), None)


def process(settings: Settings, message_id: int) -> Processed | None:
    """Parse, classify and thread one stored message; None if it was already processed."""
    url = settings.database.url
    with db.reading(url) as s:
        msg = s.get(Message, message_id)
        if msg is None or msg.state != MessageState.STORED:
            return None
        raw = msg.raw
    parsed: ParsedMail | None
    try:
        parsed, error = parse(raw), None
    except Exception as exc:  # noqa: BLE001 - any failure is recorded on the message, never raised
        parsed, error = None, f"{type(exc).__name__}: {exc}"
        log.warning("message %s could not be parsed: %s", message_id, error)
    verdict = loops.classify(message_from_bytes(raw, policy=compat32), own_addresses=settings.own_addresses)
    window = timedelta(days=settings.ingest.subject_window_days)
    env = envelope(raw)
    with db.session(url) as s:
        db.lock(s, "threading")   # first: threading may update other messages' rows too
        msg = s.get(Message, message_id, with_for_update=True)
        if msg is None or msg.state != MessageState.STORED:
            return None
        msg.from_name, msg.from_addr, msg.reply_to, msg.subject = env.from_name, env.from_addr, env.reply_to, env.subject
        msg.sent_at, msg.in_reply_to, msg.references = env.date, list(env.in_reply_to), list(env.references)
        if parsed is not None:
            msg.text, msg.reply_text, msg.hidden_text = parsed.text, parsed.reply_text, parsed.hidden_text
            msg.quoted_text, msg.signature = parsed.quoted_text, parsed.signature
            msg.attachments = [{"filename": a.filename, "content_type": a.content_type, "size": a.size}
                               for a in parsed.attachments]
            msg.defects = list(parsed.defects)
        msg.parse_error = error
        msg.kind, msg.kind_reason = verdict.kind.value, verdict.reason
        msg.mailbox = msg.mailbox or _mailbox_for(settings, raw, parsed)
        conversation = threads.assign(s, msg, window)
        msg.state, msg.processed_at = MessageState.PROCESSED, now()
        return Processed(msg, conversation)
