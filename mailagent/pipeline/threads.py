"""Threading: which conversation a message belongs to.

References first: `In-Reply-To` and `References` name messages we stored or replies we sent.
Only when they find nothing does the subject count, and then only for the same sender in the
same mailbox within a window: two customers who both write "Invoice" never share a thread.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from sqlalchemy.orm import defer
from sqlmodel import Session, col, select

from mailagent.store import db
from mailagent.store.models import Conversation, Message, Outbound, now

_PREFIXES = re.compile(
    r"^(?:\s*(?:(?:re|aw|sv|vs|antw|ref|rif|r|fw|fwd|wg|tr|rv|enc|odp|pd)(?:\s*\[\d+\]|\s*\(\d+\))?\s*[:：]"
    r"|\[[^\[\]]{0,40}\]))+",
    re.IGNORECASE,
)


def subject_key(subject: str) -> str:
    """A subject without reply/forward prefixes and list tags, case-folded: "Re: AW: [#12] Hi" -> "hi"."""
    return " ".join(_PREFIXES.sub("", subject).split()).casefold()


def referenced_ids(msg: Message) -> list[str]:
    """Message-IDs this message answers, nearest first."""
    ordered = [*msg.in_reply_to, *reversed(msg.references)]
    return list(dict.fromkeys(i for i in ordered if i and i != msg.message_id))


def _by_reference(s: Session, ids: list[str]) -> tuple[int | None, list[Message]]:
    """The conversation named by the nearest known reference, and referenced messages that have
    none yet (stored but not processed: they join the same conversation)."""
    if not ids:
        return None, []
    found = {m.message_id: m for m in s.exec(select(Message).options(defer(Message.raw))  # type: ignore[arg-type]
                                             .where(col(Message.message_id).in_(ids)))}
    sent = dict(s.exec(select(Outbound.message_id, Outbound.conversation_id)
                       .where(col(Outbound.message_id).in_(ids))).all())
    for ref in ids:
        if ref in sent:
            return sent[ref], [m for m in found.values() if m.conversation_id is None]
        if ref in found and found[ref].conversation_id is not None:
            return found[ref].conversation_id, [m for m in found.values() if m.conversation_id is None]
    return None, list(found.values())


def _by_subject(s: Session, msg: Message, key: str, window: timedelta, at: datetime) -> int | None:
    if not key or not msg.from_addr or window <= timedelta(0):
        return None
    return s.exec(
        select(Conversation.id)
        .where(Conversation.customer_addr == msg.from_addr, Conversation.mailbox == msg.mailbox,
               Conversation.subject_key == key, Conversation.last_message_at >= at - window)
        .order_by(col(Conversation.last_message_at).desc())
    ).first()


def assign(s: Session, msg: Message, window: timedelta, also: tuple[str, ...] = ()) -> Conversation:
    """Put `msg` in its conversation, creating one if it starts a thread. Serialized, so two
    messages of one new thread processed at once still make one conversation. `also`: more
    Message-IDs it is about (the original a bounce reports), after its own references."""
    db.lock(s, "threading")
    s.refresh(msg, ["conversation_id"])      # another worker may have threaded it meanwhile
    if msg.conversation_id is not None:
        conversation = s.get(Conversation, msg.conversation_id)
        assert conversation is not None
        return conversation
    at = msg.sent_at if msg.sent_at and msg.sent_at < now() else msg.received_at
    key = subject_key(msg.subject)
    conversation_id, orphans = _by_reference(s, list(dict.fromkeys([*referenced_ids(msg), *also])))
    if conversation_id is None:
        conversation_id = _by_subject(s, msg, key, window, at)
    if conversation_id is None:
        conversation = Conversation(mailbox=msg.mailbox, customer_addr=msg.from_addr,
                                    customer_name=msg.from_name, subject=msg.subject, subject_key=key,
                                    created_at=at, last_message_at=at)
        s.add(conversation)
        s.flush()
    else:
        conversation = s.get(Conversation, conversation_id)  # type: ignore[assignment]
        assert conversation is not None
        conversation.last_message_at = max(conversation.last_message_at, at)
    for member in [msg, *orphans]:
        member.conversation_id = conversation.id
    return conversation
