"""Drafts found by what they answer: the newest one of a conversation still open for a rep, and
the sent one that produced a reply."""

from __future__ import annotations

from collections.abc import Collection

from sqlmodel import Session, col, select

from mailagent.store.models import Draft, DraftState


def newest(s: Session, conversation_id: int, states: Collection[DraftState], *, before: int | None = None
           ) -> Draft | None:
    """The conversation's newest draft in one of `states` (answering a message older than `before`)."""
    query = select(Draft).where(Draft.conversation_id == conversation_id, col(Draft.state).in_(list(states)))
    if before is not None:
        query = query.where(Draft.message_id < before)
    return s.exec(query.order_by(col(Draft.id).desc())).first()


def sent_as(s: Session, outbound_id: int) -> Draft | None:
    """The sent draft whose reply is this row of the outbox."""
    return s.exec(select(Draft).where(Draft.outbound_id == outbound_id, Draft.state == DraftState.SENT)).first()
