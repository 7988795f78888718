"""The review queue: held and escalated drafts and proposed actions, oldest customer message
first, with why each one waits. Read-only; the verbs that work the queue are in review/."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Literal

from sqlmodel import col, select

from mailagent.store import db
from mailagent.store.models import (
    Action,
    ActionState,
    Conversation,
    Draft,
    DraftState,
    Message,
)

WAITING_DRAFTS = (DraftState.HELD, DraftState.ESCALATED)
Kind = Literal["draft", "action"]


@dataclass(frozen=True)
class Item:
    """One thing a rep must decide."""

    kind: Kind
    id: int
    conversation_id: int
    draft_id: int
    customer: str
    customer_name: str
    subject: str
    language: str
    arrived_at: datetime            # the customer message it answers: how long the customer waits
    state: str
    reason: str                     # the deciding rule, or "action: <tool>"
    confidence: float | None
    flags: tuple[str, ...]
    why: tuple[str, ...]            # the decision's reasons, in words
    taken_by: str | None
    shadow: bool = False
    amount: Decimal | None = None
    currency: str | None = None


@dataclass(frozen=True)
class Filters:
    kind: Kind | None = None
    reason: str | None = None
    language: str | None = None
    customer: str | None = None     # part of the address or name, any case
    state: str | None = None


@dataclass(frozen=True)
class Queue:
    items: list[Item]               # filtered, oldest first
    total: int                      # before filtering
    by_reason: list[tuple[str, int]] = field(default_factory=list)   # whole queue, largest first
    languages: list[str] = field(default_factory=list)


def queue(url: str, filters: Filters = Filters(), limit: int = 500) -> Queue:
    with db.reading(url) as s:
        drafts = s.exec(select(Draft, Conversation, Message)
                        .join(Conversation, col(Draft.conversation_id) == Conversation.id)
                        .join(Message, col(Draft.message_id) == Message.id)
                        .where(col(Draft.state).in_(WAITING_DRAFTS))).all()
        actions = s.exec(select(Action, Draft, Conversation, Message)
                         .join(Draft, col(Action.draft_id) == Draft.id)
                         .join(Conversation, col(Action.conversation_id) == Conversation.id)
                         .join(Message, col(Draft.message_id) == Message.id)
                         .where(Action.state == ActionState.PROPOSED)).all()
    items = [_draft_item(d, c, m) for d, c, m in drafts] + [_action_item(a, d, c, m) for a, d, c, m in actions]
    items.sort(key=lambda i: (i.arrived_at, i.kind, i.id))
    counts = Counter(i.reason for i in items)
    return Queue(items=[i for i in items if matches(i, filters)][:limit], total=len(items),
                 by_reason=sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])),
                 languages=sorted({i.language for i in items if i.language}))


def matches(item: Item, f: Filters) -> bool:
    needle = (f.customer or "").strip().lower()
    return ((f.kind is None or item.kind == f.kind) and (f.reason is None or item.reason == f.reason)
            and (f.language is None or item.language == f.language) and (f.state is None or item.state == f.state)
            and (not needle or needle in item.customer.lower() or needle in item.customer_name.lower()))


def _draft_item(d: Draft, c: Conversation, m: Message) -> Item:
    assert d.id is not None and c.id is not None
    return Item(kind="draft", id=d.id, conversation_id=c.id, draft_id=d.id, customer=c.customer_addr,
                customer_name=c.customer_name, subject=m.subject or c.subject, language=d.language,
                arrived_at=m.received_at, state=d.state, reason=d.rule or "(no rule)", confidence=d.confidence,
                flags=tuple(d.flags), why=tuple(d.reasons), taken_by=c.taken_by, shadow=d.shadow)


def _action_item(a: Action, d: Draft, c: Conversation, m: Message) -> Item:
    assert a.id is not None and c.id is not None and d.id is not None
    return Item(kind="action", id=a.id, conversation_id=c.id, draft_id=d.id, customer=c.customer_addr,
                customer_name=c.customer_name, subject=m.subject or c.subject, language=d.language,
                arrived_at=m.received_at, state=a.state, reason=f"action: {a.tool}", confidence=d.confidence,
                flags=tuple(d.flags), why=tuple(a.reasons), taken_by=c.taken_by,
                amount=a.amount, currency=a.currency)


@dataclass(frozen=True)
class ActionView:
    action: Action
    conversation: Conversation
    turn: Message | None            # the customer message the paused draft answers


def actions(url: str, decided_limit: int = 50) -> tuple[list[ActionView], list[ActionView]]:
    """Proposed actions, oldest first, and the latest decided ones, newest first."""
    with db.reading(url) as s:
        base = (select(Action, Conversation, Message)
                .join(Conversation, col(Action.conversation_id) == Conversation.id)
                .join(Draft, col(Action.draft_id) == Draft.id).join(Message, col(Draft.message_id) == Message.id))
        waiting = s.exec(base.where(Action.state == ActionState.PROPOSED).order_by(col(Action.id))).all()
        decided = s.exec(base.where(Action.state != ActionState.PROPOSED)
                         .order_by(col(Action.decided_at).desc(), col(Action.id).desc()).limit(decided_limit)).all()
    return [ActionView(*row) for row in waiting], [ActionView(*row) for row in decided]
