"""Reading the agent's traces back (models/drafts.py; `agent/tracing.py` writes them)."""

from __future__ import annotations

from sqlmodel import Session, col, select

from mailagent.store.models import SpanRecord


def spans(s: Session, trace_id: str) -> list[SpanRecord]:
    """A trace's spans in the order they started."""
    return list(s.exec(select(SpanRecord).where(SpanRecord.trace_id == trace_id)
                       .order_by(col(SpanRecord.started_at))).all())
