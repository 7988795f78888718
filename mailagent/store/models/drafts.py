"""What the agent wrote and how it was decided and reviewed; its traces; the knowledge articles."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import AutoString, Field, SQLModel

from mailagent.store.models.base import now


class Article(SQLModel, table=True):
    """A knowledge-base article, synced from `knowledge/*.md` (the files are the source)."""

    id: str = Field(primary_key=True)               # file stem, e.g. "password-reset.en"
    title: str
    tags: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    locale: str = Field(index=True)
    updated: str = ""                               # ISO date from the front matter
    intent: str = ""                                # the intent it answers, from the front matter
    body: str
    path: str
    sha256: str
    synced_at: datetime = Field(default_factory=now)


class DraftState(StrEnum):
    DRAFTING = "drafting"      # the agent is working on it
    HELD = "held"              # waits for a rep (review queue)
    ESCALATED = "escalated"    # handed to a human team, no reply drafted for sending
    SENT = "sent"              # its reply is in the outbox (auto-sent or approved)
    REJECTED = "rejected"      # a rep said no
    IGNORED = "ignored"        # nothing to answer (automated mail, policy)
    SUPERSEDED = "superseded"  # a newer customer message arrived: a new draft replaces it
    WAITING = "waiting"        # the agent proposed actions: waits for their approval, then resumes


class Draft(SQLModel, table=True):
    """One draft per customer turn: the agent's proposal, the policy's decision, the rep's verdict."""

    __table_args__ = (UniqueConstraint("conversation_id", "message_id"),)
    id: int | None = Field(default=None, primary_key=True)
    conversation_id: int = Field(foreign_key="conversation.id", index=True)
    message_id: int = Field(foreign_key="message.id")   # the customer turn it answers
    state: DraftState = Field(default=DraftState.DRAFTING, index=True, sa_type=AutoString)
    text: str = ""
    confidence: float = 0.0
    intent: str = ""
    language: str = ""
    needs_human: bool = False
    needs_human_reason: str = ""
    cited: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    flags: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    decision: str | None = None                     # send | hold | escalate | ignore
    shadow: bool = False                            # held, but the policy would have sent it
    rule: str | None = None
    policy_version: str = ""
    reasons: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    facts: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    model: str = ""
    prompt_version: str = ""
    usage: dict[str, int] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    trace_id: str | None = Field(default=None, index=True)
    error: str | None = None
    run_state: str | None = None                    # a paused agent run (RunState JSON), kept server-side
    request: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    """What the agent saw (`evals.snapshot.dump` of the DraftRequest, redacted): eval cases copy it."""
    outbound_id: int | None = Field(default=None, foreign_key="outbound.id")
    reviewed_by: str | None = None
    final_text: str | None = None                   # what was sent after a rep's edit
    reject_reason: str | None = None
    created_at: datetime = Field(default_factory=now)
    started_at: datetime = Field(default_factory=now)   # of the current attempt
    lease_owner: str | None = None                  # the worker process writing it now ...
    lease_until: datetime | None = Field(default=None, index=True)   # ... which renews this while it lives
    attempts: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    decided_at: datetime | None = None
    reviewed_at: datetime | None = None


class Feedback(SQLModel, table=True):
    """A rep's verdict on a draft: the draft-versus-final pair the learning loop learns from."""

    id: int | None = Field(default=None, primary_key=True)
    draft_id: int = Field(foreign_key="draft.id", index=True)
    conversation_id: int = Field(foreign_key="conversation.id")
    verdict: str                                    # approved | edited | rejected
    draft_text: str
    final_text: str | None = None
    reason: str | None = None
    reviewer: str
    created_at: datetime = Field(default_factory=now)


class TraceRecord(SQLModel, table=True):
    """An agent run's trace, stored locally (never exported unless configured)."""

    __tablename__ = "trace"
    id: str = Field(primary_key=True)
    workflow: str = ""
    group_id: str | None = Field(default=None, index=True)    # the conversation id
    started_at: datetime = Field(default_factory=now)
    ended_at: datetime | None = None
    meta: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class SpanRecord(SQLModel, table=True):
    """One step of a trace: agent, model call, tool call, guardrail, policy decision."""

    __tablename__ = "span"
    id: str = Field(primary_key=True)
    trace_id: str = Field(index=True)
    parent_id: str | None = None
    kind: str
    name: str = ""
    started_at: datetime | None = None
    ended_at: datetime | None = None
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    error: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
