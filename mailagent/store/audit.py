"""The audit log: one append-only row per proposal, decision, approval, execution and takeover.

Written in the same transaction as the change it describes, so the log and the state never
disagree; the database itself refuses to update or delete its rows (see migration 0004)."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select

from mailagent.redact import redact_data
from mailagent.store.models import AuditEntry


def record(s: Session, actor: str, event: str, *, conversation_id: int | None = None, draft_id: int | None = None,
           action_id: int | None = None, **details: Any) -> None:
    s.add(AuditEntry(actor=actor, event=event, conversation_id=conversation_id, draft_id=draft_id,
                     action_id=action_id, details=redact_data(details)))


def trail(s: Session, *, conversation_id: int | None = None, action_id: int | None = None,
          event: str | None = None) -> list[AuditEntry]:
    """The entries of a conversation or of an action (of one event), oldest first."""
    query = select(AuditEntry).order_by(col(AuditEntry.id))
    if conversation_id is not None:
        query = query.where(AuditEntry.conversation_id == conversation_id)
    if action_id is not None:
        query = query.where(AuditEntry.action_id == action_id)
    if event is not None:
        query = query.where(AuditEntry.event == event)
    return list(s.exec(query))
