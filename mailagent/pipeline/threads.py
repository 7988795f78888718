"""Threading: which conversation a message belongs to.

References first: `In-Reply-To` and `References` name messages we stored or replies we sent.
Only when they find nothing does the subject count, and then only for the same sender in the
same mailbox within a window: two customers who both write "Invoice" never share a thread.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from mailagent.store import messages
from mailagent.store.db import Session
from mailagent.store.messages import Stored, Threaded
from mailagent.store.models import now

_PREFIXES = re.compile(
    r"^(?:\s*(?:(?:re|aw|sv|vs|antw|ref|rif|r|fw|fwd|wg|tr|rv|enc|odp|pd)(?:\s*\[\d+\]|\s*\(\d+\))?\s*[:：]"
    r"|\[[^\[\]]{0,40}\]))+",
    re.IGNORECASE,
)


def subject_key(subject: str) -> str:
    """A subject without reply/forward prefixes and list tags, case-folded: "Re: AW: [#12] Hi" -> "hi"."""
    return " ".join(_PREFIXES.sub("", subject).split()).casefold()


@dataclass(frozen=True)
class Incoming:
    """What threading reads of a message: its row, and what its parse said."""

    row: Stored
    mailbox: str | None
    from_addr: str
    from_name: str
    subject: str
    sent_at: datetime | None
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]


def referenced_ids(msg: Incoming) -> list[str]:
    """Message-IDs this message answers, nearest first."""
    ordered = [*msg.in_reply_to, *reversed(msg.references)]
    return list(dict.fromkeys(i for i in ordered if i and i != msg.row.message_id))


def _by_reference(s: Session, ids: list[str]) -> tuple[int | None, list[int]]:
    """The conversation named by the nearest known reference, and referenced messages that have
    none yet (stored but not processed: they join the same conversation)."""
    if not ids:
        return None, []
    found, sent = messages.referenced(s, ids)
    orphans = [ident for ident, conversation in found.values() if conversation is None]
    for ref in ids:
        if ref in sent:
            return sent[ref], orphans
        if ref in found and found[ref][1] is not None:
            return found[ref][1], orphans
    return None, [ident for ident, _ in found.values()]


def _by_subject(s: Session, msg: Incoming, key: str, window: timedelta, at: datetime) -> int | None:
    if not key or not msg.from_addr or window <= timedelta(0):
        return None
    return messages.by_subject(s, msg.from_addr, msg.mailbox, key, at - window)


def assign(s: Session, msg: Incoming, window: timedelta, also: tuple[str, ...] = ()) -> Threaded:
    """Put `msg` in its conversation, creating one if it starts a thread (the caller records the
    message's own `conversation_id`). The caller holds the `threading` lock (`db.lock`), so two
    messages of one new thread processed at once still make one conversation. `also`: more
    Message-IDs it is about (the original a bounce reports), after its own references."""
    if msg.row.conversation_id is not None:       # another message's threading took it along
        return messages.touch_conversation(s, msg.row.conversation_id, None)
    at = msg.sent_at if msg.sent_at and msg.sent_at < now() else msg.row.received_at
    key = subject_key(msg.subject)
    conversation_id, orphans = _by_reference(s, list(dict.fromkeys([*referenced_ids(msg), *also])))
    if conversation_id is None:
        conversation_id = _by_subject(s, msg, key, window, at)
    if conversation_id is None:
        conversation = messages.new_conversation(s, mailbox=msg.mailbox, customer_addr=msg.from_addr,
                                                 customer_name=msg.from_name, subject=msg.subject, subject_key=key,
                                                 created_at=at, last_message_at=at)
    else:
        conversation = messages.touch_conversation(s, conversation_id, at)
    if orphans:
        messages.join(s, conversation.id, orphans)
    return conversation
