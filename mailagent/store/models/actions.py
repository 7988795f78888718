"""Proposed actions with side effects, and the append-only audit log."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import AutoString, Field, SQLModel

from mailagent.store.models.base import Money, now


class ActionState(StrEnum):
    PROPOSED = "proposed"      # the agent asked; a rep (or a policy rule) must decide
    APPROVED = "approved"      # may run, once
    REJECTED = "rejected"
    EXECUTED = "executed"
    FAILED = "failed"


class Action(SQLModel, table=True):
    """A tool call with side effects the agent proposed: decided, then executed at most once.

    The idempotency key is derived from the proposal (draft, call and arguments), never from an
    attempt, so a retried or duplicated execution reaches the backend as a replay."""

    id: int | None = Field(default=None, primary_key=True)
    draft_id: int = Field(foreign_key="draft.id", index=True)
    conversation_id: int = Field(foreign_key="conversation.id", index=True)
    call_id: str
    tool: str
    arguments: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    amount: Decimal | None = Field(default=None, sa_type=Money)    # exact: cents in the database
    currency: str | None = None
    customer: str = ""                              # the customer's address, for per-customer limits
    idempotency_key: str = Field(unique=True)
    state: ActionState = Field(default=ActionState.PROPOSED, index=True, sa_type=AutoString)
    decided_by: str | None = None                   # a rep, or "policy:<rule>"
    reasons: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    result: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    error: str | None = None
    created_at: datetime = Field(default_factory=now)
    decided_at: datetime | None = None
    executed_at: datetime | None = None


class AuditEntry(SQLModel, table=True):
    """Append-only: who did what, when, with which arguments and outcome (the database refuses
    updates and deletes of these rows)."""

    __tablename__ = "audit_log"
    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=now, index=True)
    actor: str                                      # a rep, "policy:<rule>", "agent" or "system"
    event: str                                      # proposed | approved | rejected | executed | failed | taken | released ...
    conversation_id: int | None = Field(default=None, index=True)
    draft_id: int | None = None
    action_id: int | None = Field(default=None, index=True)
    details: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
