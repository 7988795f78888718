"""The audit log: one append-only row per proposal, decision, approval, execution and takeover.

Written in the same transaction as the change it describes, so the log and the state never
disagree; the database itself refuses to update or delete its rows (see migration 0004)."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from mailagent.redact import redact_data
from mailagent.store.models import AuditEntry


def record(s: Session, actor: str, event: str, *, conversation_id: int | None = None, draft_id: int | None = None,
           action_id: int | None = None, **details: Any) -> None:
    s.add(AuditEntry(actor=actor, event=event, conversation_id=conversation_id, draft_id=draft_id,
                     action_id=action_id, details=redact_data(details)))
