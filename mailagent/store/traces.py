"""The stored traces of the agent's runs (see `agent/tracing.py`), read back."""

from __future__ import annotations

from sqlmodel import Session, col, select

from mailagent.store.models import SpanRecord, TraceRecord


def spans(s: Session, trace_id: str) -> list[SpanRecord]:
    """A trace's spans in the order they started."""
    return list(s.exec(select(SpanRecord).where(SpanRecord.trace_id == trace_id)
                       .order_by(col(SpanRecord.started_at))).all())


def of_conversation(s: Session, conversation_id: int) -> tuple[list[TraceRecord], list[SpanRecord]]:
    """A conversation's traces, oldest first, and all their spans."""
    traces = list(s.exec(select(TraceRecord).where(TraceRecord.group_id == str(conversation_id))
                         .order_by(col(TraceRecord.started_at))))
    ids = [t.id for t in traces]
    found = list(s.exec(select(SpanRecord).where(col(SpanRecord.trace_id).in_(ids)))) if ids else []
    return traces, found


def tool_calls(s: Session) -> list[str]:
    """The name of every tool the agent called (one entry per call)."""
    return list(s.exec(select(SpanRecord.name).where(SpanRecord.kind == "function")))
