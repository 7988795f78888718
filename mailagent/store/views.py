"""Reads behind the read-only views for people and programs (the CLI's `show` and list commands,
the demo's summary, `/metrics`): rows as models, in a stable order; the caller's transaction."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import func
from sqlmodel import Session, col, select

from mailagent.store.models import Message, Outbound

T = TypeVar("T")


def newest(s: Session, model: type[T], limit: int, **equal: Any) -> list[T]:
    """The newest `limit` rows of a table (those whose columns equal the given values, None
    meaning any), oldest first."""
    query = select(model).order_by(col(model.id).desc()).limit(limit)  # type: ignore[attr-defined]
    for name, value in equal.items():
        if value is not None:
            query = query.where(getattr(model, name) == value)
    return list(reversed(s.exec(query).all()))


def every(s: Session, model: type[T]) -> list[T]:
    """Every row of a table, in the order stored (a demo's small database)."""
    return list(s.exec(select(model).order_by(col(model.id))))  # type: ignore[attr-defined]


def conversation_mail(s: Session, conversation_id: int) -> tuple[list[Message], list[Outbound]]:
    """A conversation's messages and replies."""
    return (list(s.exec(select(Message).where(Message.conversation_id == conversation_id))),
            list(s.exec(select(Outbound).where(Outbound.conversation_id == conversation_id))))


def message_counts(s: Session) -> list[tuple[str, str | None, int]]:
    """(state, kind, count) of the messages."""
    rows = s.exec(select(Message.state, Message.kind, func.count()).group_by(Message.state, Message.kind))
    return [(state, kind, count) for state, kind, count in rows]


def outbound_counts(s: Session) -> list[tuple[str, int]]:
    """(state, count) of the replies in the outbox."""
    return [(state, count) for state, count in s.exec(select(Outbound.state, func.count()).group_by(Outbound.state))]
