"""Eval cases as the learning loop stores and selects them (models/evals.py), and what a case is
made from: the reps' feedback, the draft's actions, and the turns before it when the draft kept no
snapshot of its own."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import exists
from sqlmodel import Session, col, select

from mailagent.store import db
from mailagent.store.models import EvalCase, Feedback, Message, MessageState, Outbound


def feedback_without_case(s: Session, limit: int) -> list[Feedback]:
    """The oldest reps' verdicts no case was made from yet."""
    return list(s.exec(select(Feedback).where(~exists().where(EvalCase.feedback_id == Feedback.id))
                       .order_by(col(Feedback.id)).limit(limit)).all())


def insert_new(s: Session, case: EvalCase) -> bool:
    """Insert unless a case of that origin exists (a second builder, a second flag)."""
    values = {c.name: getattr(case, c.name) for c in EvalCase.__table__.columns if c.name != "id"}  # type: ignore[attr-defined]
    return bool(s.execute(db.insert(s, EvalCase).values(**values).on_conflict_do_nothing()).rowcount)


def by_origin(s: Session, origin: str) -> EvalCase:
    return s.exec(select(EvalCase).where(EvalCase.origin == origin)).one()


def matching(s: Session, states: Sequence[str], sources: Sequence[str]) -> list[EvalCase]:
    """Oldest first; an empty `states` or `sources` does not filter."""
    query = select(EvalCase)
    if states:
        query = query.where(col(EvalCase.state).in_(states))
    if sources:
        query = query.where(col(EvalCase.source).in_(sources))
    return list(s.exec(query.order_by(col(EvalCase.id))).all())


def states_and_tags(s: Session) -> list[tuple[str, list[str]]]:
    """Each case's state and tags, without loading the snapshots."""
    return [(state, tags) for state, tags in s.exec(select(EvalCase.state, EvalCase.tags))]


def not_suggested(s: Session, limit: int) -> list[EvalCase]:
    """The oldest cases not yet looked at for a knowledge suggestion."""
    return list(s.exec(select(EvalCase).where(EvalCase.suggested == False)  # noqa: E712 - SQL
                       .order_by(col(EvalCase.id)).limit(limit)).all())


def history_before(s: Session, conversation_id: int, turn_id: int, started: datetime
                   ) -> tuple[list[Message], list[Outbound]]:
    """What the conversation held when a draft was started: the customer's processed turns before
    the one it answers, and our replies created before it."""
    earlier = s.exec(select(Message).where(
        Message.conversation_id == conversation_id, col(Message.id) < turn_id, Message.kind == "normal",
        Message.state == MessageState.PROCESSED)).all()
    sent = s.exec(select(Outbound).where(Outbound.conversation_id == conversation_id,
                                         Outbound.created_at < started)).all()
    return list(earlier), list(sent)
