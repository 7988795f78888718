"""A stored message through the classify stage, in SQLAlchemy Core (statements built once):
an attempt counted, the row locked and read, the conversation it belongs to found or created,
what the parse said recorded in one UPDATE."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.orm import defer
from sqlmodel import Session

from mailagent.store.models import Conversation, Message, MessageState, Outbound, now


@dataclass(frozen=True)
class Attempt:
    """A processing attempt just counted: the raw bytes, and the error the last one left."""

    attempts: int
    error: str | None
    raw: bytes


@dataclass(frozen=True)
class Stored:
    """The row of a message waiting to be processed, as threading needs it."""

    id: int
    message_id: str | None
    mailbox: str | None                # the one it was fetched from, if any
    received_at: datetime
    conversation_id: int | None        # set already when another message's threading took it along


@dataclass(frozen=True)
class Threaded:
    """The conversation a message joined."""

    id: int
    subject: str


def count_attempt(s: Session, message_id: int) -> Attempt | None:
    """Count an attempt at a stored message; None when it is not waiting to be processed."""
    row = s.connection().execute(_COUNT, {"m": message_id}).first()
    return Attempt(*row) if row else None


def fail(s: Session, message_id: int, error: str) -> None:
    """Processing this message is given up: `failed`, with the reason."""
    s.connection().execute(_FAIL, {"m": message_id, "at": now(), "error": error})


def uncount(s: Session, message_id: int) -> None:
    s.connection().execute(_UNCOUNT, {"m": message_id})


def set_error(s: Session, message_id: int, error: str) -> None:
    s.connection().execute(_ERROR, {"m": message_id, "error": error})


def conversation_of(s: Session, message_id: int) -> int | None:
    """The conversation of a processed message."""
    return s.connection().execute(_CONVERSATION_OF, {"m": message_id}).scalar()


def lock_stored(s: Session, message_id: int) -> Stored | None:
    """The message's row, locked, if it still waits to be processed."""
    row = s.connection().execute(_STORED, {"m": message_id}).first()
    return Stored(*row) if row else None


def processed(s: Session, message_id: int, **values: Any) -> None:
    """Record what processing found (`values`: every column of `_PROCESSED_COLUMNS`), and mark the
    message processed."""
    s.connection().execute(_PROCESSED, {"m": message_id, "at": now(), **{f"v_{k}": v for k, v in values.items()}})


def referenced(s: Session, ids: list[str]) -> tuple[dict[str, tuple[int, int | None]], dict[str, int]]:
    """Of these Message-IDs: the stored messages (id, conversation) and our sent replies (conversation)."""
    conn = s.connection()
    found = {r.message_id: (r.id, r.conversation_id) for r in conn.execute(_BY_MESSAGE_ID, {"ids": ids})}
    sent = {r.message_id: r.conversation_id for r in conn.execute(_SENT_BY_MESSAGE_ID, {"ids": ids})}
    return found, sent


def by_subject(s: Session, customer_addr: str, mailbox: str | None, key: str, since: datetime) -> int | None:
    """The newest conversation of this customer in this mailbox with this subject key since `since`."""
    return s.connection().execute(_BY_SUBJECT, {"addr": customer_addr, "mailbox": mailbox, "key": key,
                                                "since": since}).scalar()


def new_conversation(s: Session, **values: Any) -> Threaded:
    ident = s.connection().execute(_NEW_CONVERSATION, values).scalar_one()
    return Threaded(ident, values.get("subject", ""))


def touch_conversation(s: Session, conversation_id: int, at: datetime | None) -> Threaded:
    """A conversation a message joins: its last message is at `at` or later (None: left as it is)."""
    conn = s.connection()
    row = conn.execute(_CONVERSATION, {"c": conversation_id}).one()
    if at is not None and at > row.last_message_at:
        conn.execute(_TOUCH, {"c": conversation_id, "at": at})
    return Threaded(conversation_id, row.subject)


def orm(s: Session, message_id: int) -> Message:
    """The ORM object of a message (without its raw bytes), for the callers that take one."""
    row = s.get(Message, message_id, options=[defer(Message.raw)])  # type: ignore[arg-type]
    assert row is not None
    return row


def join(s: Session, conversation_id: int, message_ids: list[int]) -> None:
    """Messages that are part of a conversation (the one processed, and stored ones it references)."""
    s.connection().execute(_JOIN, {"c": conversation_id, "ids": message_ids})


def _table(model: Any) -> Table:
    return model.__table__  # type: ignore[no-any-return]


_m, _c, _o = _table(Message), _table(Conversation), _table(Outbound)
_WAITING = (_m.c.id == bindparam("m")) & (_m.c.state == MessageState.STORED.value)
_COUNT = update(_m).where(_WAITING).values(attempts=_m.c.attempts + 1).returning(_m.c.attempts, _m.c.error, _m.c.raw)
_FAIL = update(_m).where(_m.c.id == bindparam("m")).values(state=MessageState.FAILED.value, processed_at=bindparam("at"),
                                                           error=bindparam("error"))
_UNCOUNT = update(_m).where(_m.c.id == bindparam("m"), _m.c.attempts > 0).values(attempts=_m.c.attempts - 1)
_ERROR = update(_m).where(_m.c.id == bindparam("m")).values(error=bindparam("error"))
_CONVERSATION_OF = select(_m.c.conversation_id).where(_m.c.id == bindparam("m"),
                                                      _m.c.state == MessageState.PROCESSED.value)
_STORED = select(_m.c.id, _m.c.message_id, _m.c.mailbox, _m.c.received_at, _m.c.conversation_id).where(_WAITING).with_for_update()
_BY_MESSAGE_ID = select(_m.c.id, _m.c.message_id, _m.c.conversation_id).where(
    _m.c.message_id.in_(bindparam("ids", expanding=True)))
_SENT_BY_MESSAGE_ID = select(_o.c.message_id, _o.c.conversation_id).where(
    _o.c.message_id.in_(bindparam("ids", expanding=True)))
_BY_SUBJECT = (select(_c.c.id).where(_c.c.customer_addr == bindparam("addr"), _c.c.mailbox.is_not_distinct_from(bindparam("mailbox")),
                                     _c.c.subject_key == bindparam("key"), _c.c.last_message_at >= bindparam("since"))
               .order_by(_c.c.last_message_at.desc()).limit(1))
_PROCESSED_COLUMNS = ("mailbox", "conversation_id", "from_name", "from_addr", "reply_to", "subject", "sent_at",
                      "in_reply_to", "references", "parse_error", "kind", "kind_reason", "text", "reply_text",
                      "hidden_text", "quoted_text", "signature", "defects", "attachments", "sender_authenticated",
                      "sender_auth_method", "sender_auth_domain", "sender_auth_reason")
_PROCESSED = update(_m).where(_m.c.id == bindparam("m")).values(
    state=MessageState.PROCESSED.value, processed_at=bindparam("at"), error=None,
    **{name: bindparam(f"v_{name}") for name in _PROCESSED_COLUMNS})
_NEW_CONVERSATION = insert(_c).returning(_c.c.id)
_CONVERSATION = select(_c.c.subject, _c.c.last_message_at).where(_c.c.id == bindparam("c"))
_TOUCH = update(_c).where(_c.c.id == bindparam("c")).values(last_message_at=bindparam("at"))
_JOIN = update(_m).where(_m.c.id.in_(bindparam("ids", expanding=True))).values(conversation_id=bindparam("c"))
