"""Proposed actions as `actions/` reads and settles them: the proposal of one tool call, the money
policy approvals moved, the refusals that bind later proposals, and an outcome recorded once."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, update
from sqlmodel import Session, col, select

from mailagent.store.models import Action, ActionState


def of_call(s: Session, draft_id: int, call_id: str) -> Action | None:
    return s.exec(select(Action).where(Action.draft_id == draft_id, Action.call_id == call_id)).first()


def by_key(s: Session, idempotency_key: str) -> Action | None:
    """The proposal stored before under this key (the same call proposed again)."""
    return s.exec(select(Action).where(Action.idempotency_key == idempotency_key)).first()


def of_draft(s: Session, draft_id: int, state: ActionState | None = None) -> list[Action]:
    """A draft's proposals (in one state), in the order they were stored."""
    query = select(Action).where(Action.draft_id == draft_id).order_by(col(Action.id))
    if state is not None:
        query = query.where(Action.state == state)
    return list(s.exec(query))


def count_of_draft(s: Session, draft_id: int) -> int:
    return s.exec(select(func.count()).select_from(Action).where(Action.draft_id == draft_id)).one()


def rejections(s: Session, tool: str, *, conversation_id: int | None = None, customer: str | None = None,
               exclude: int | None = None) -> list[Action]:
    """Rejected proposals of `tool` in one conversation, or for one customer (address in any case)."""
    query = select(Action).where(Action.state == ActionState.REJECTED, Action.tool == tool).order_by(col(Action.id))
    if conversation_id is not None:
        query = query.where(Action.conversation_id == conversation_id)
    if customer is not None:
        query = query.where(func.lower(Action.customer) == customer.lower())
    if exclude is not None:
        query = query.where(Action.id != exclude)
    return list(s.exec(query))


def auto_approved_since(s: Session, since: datetime, customer: str | None = None, *,
                        exclude: int | None = None) -> Decimal:
    """Money moved on policy approvals since `since` (for one customer, or everyone)."""
    query = (select(func.coalesce(func.sum(Action.amount), Decimal(0)))
             .where(col(Action.decided_by).startswith("policy:"),
                    col(Action.state).in_([ActionState.APPROVED, ActionState.EXECUTED]),
                    Action.decided_at >= since))
    if customer is not None:
        query = query.where(Action.customer == customer)
    if exclude is not None:
        query = query.where(Action.id != exclude)
    return Decimal(s.exec(query).one())


def settle(s: Session, action_id: int, **values: Any) -> bool:
    """Write the outcome of an approved action; False when it is approved no longer (a concurrent
    run recorded its outcome first), so an outcome is recorded once."""
    return bool(s.execute(update(Action).where(Action.id == action_id, Action.state == ActionState.APPROVED)
                          .values(**values)).rowcount)
