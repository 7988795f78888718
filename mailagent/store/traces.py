"""The stored traces of the agent's runs (see `agent/tracing.py`): written, and read back."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, select

from mailagent.store.models import SpanRecord, TraceRecord


def add(s: Session, traces: Sequence[dict[str, Any]], spans: Sequence[dict[str, Any]]) -> None:
    """Store ended traces and their spans (rows as dicts of every column); a row stored already
    stays as it is. SQLAlchemy Core statements built once: every agent run writes one trace."""
    conn = s.connection()
    trace_insert, span_insert = _ADD_POSTGRESQL if conn.dialect.name == "postgresql" else _ADD_SQLITE
    conn.execute(trace_insert, list(traces))
    if spans:
        conn.execute(span_insert, list(spans))


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


_trace: Table = TraceRecord.__table__  # type: ignore[assignment]
_span: Table = SpanRecord.__table__  # type: ignore[assignment]
_ADD_SQLITE = (sqlite_insert(_trace).on_conflict_do_nothing(), sqlite_insert(_span).on_conflict_do_nothing())
_ADD_POSTGRESQL = (pg_insert(_trace).on_conflict_do_nothing(), pg_insert(_span).on_conflict_do_nothing())
