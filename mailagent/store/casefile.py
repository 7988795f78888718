"""Everything a rep needs to decide on one conversation, read in one transaction: the thread,
its drafts with the articles they cite, the proposed actions, the agent's steps, eval flags and
the audit trail."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlmodel import Session, col, select

from mailagent.store import db
from mailagent.store import traces as stored_traces
from mailagent.store.models import (
    Action,
    Article,
    AuditEntry,
    Conversation,
    Draft,
    DraftState,
    EvalFlag,
    Message,
    Outbound,
    SpanRecord,
    TraceRecord,
)

T = TypeVar("T")


def decided_draft(s: Session, conversation_id: int, draft_id: int | None = None) -> Draft | None:
    """A conversation's newest draft that was decided (or the one named, if it was): the turn an
    eval case or a replay is made from."""
    query = select(Draft).where(Draft.conversation_id == conversation_id,
                                col(Draft.state).not_in([DraftState.DRAFTING, DraftState.SUPERSEDED]))
    if draft_id is not None:
        query = query.where(Draft.id == draft_id)
    return s.exec(query.order_by(col(Draft.id).desc())).first()


@dataclass(frozen=True)
class Entry:
    """One mail in the thread: a customer's message or one of our replies."""

    at: datetime
    inbound: Message | None = None
    outbound: Outbound | None = None


@dataclass(frozen=True)
class Step:
    """A trace span, with its depth in the tree of its trace."""

    span: SpanRecord
    depth: int


@dataclass(frozen=True)
class CaseFile:
    conversation: Conversation
    thread: list[Entry]             # oldest first
    drafts: list[Draft]             # oldest first
    actions: list[Action]
    articles: dict[str, Article]    # every article a draft cites, by id
    steps: list[Step]               # of every trace of the conversation, in order
    flags: list[EvalFlag]
    audit: list[AuditEntry]

    @property
    def current(self) -> Draft | None:
        """The newest draft: the one a rep reviews."""
        return self.drafts[-1] if self.drafts else None

    def actions_of(self, draft_id: int | None) -> list[Action]:
        return [a for a in self.actions if a.draft_id == draft_id]


def casefile(url: str, conversation_id: int) -> CaseFile | None:
    with db.reading(url) as s:
        conversation = s.get(Conversation, conversation_id)
        if conversation is None:
            return None

        def rows(model: type[T], *order: Any) -> list[T]:
            query = select(model).where(model.conversation_id == conversation_id)  # type: ignore[attr-defined]
            return list(s.exec(query.order_by(*order)))

        inbound, outbound = rows(Message), rows(Outbound)
        drafts, actions = rows(Draft, col(Draft.id)), rows(Action, col(Action.id))
        flags, trail = rows(EvalFlag, col(EvalFlag.id)), rows(AuditEntry, col(AuditEntry.id))
        cited = sorted({a for d in drafts for a in d.cited})
        articles = s.exec(select(Article).where(col(Article.id).in_(cited))).all() if cited else []
        traces, spans = stored_traces.of_conversation(s, conversation_id)
    thread = sorted([Entry(m.received_at, inbound=m) for m in inbound]
                    + [Entry(o.created_at, outbound=o) for o in outbound], key=lambda e: e.at)
    return CaseFile(conversation=conversation, thread=thread, drafts=drafts, actions=actions,
                    articles={a.id: a for a in articles}, steps=_steps(traces, spans), flags=flags, audit=trail)


def _steps(traces: Sequence[TraceRecord], spans: Sequence[SpanRecord]) -> list[Step]:
    out: list[Step] = []
    for trace in traces:
        own = sorted((sp for sp in spans if sp.trace_id == trace.id), key=lambda sp: sp.started_at or trace.started_at)
        depth: dict[str, int] = {}
        for sp in own:
            depth[sp.id] = depth.get(sp.parent_id or "", -1) + 1
            out.append(Step(sp, depth[sp.id]))
    return out
