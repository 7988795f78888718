"""Agent traces kept in our own database, redacted, and exported nowhere unless configured.

The Agents SDK calls a processor synchronously on the run's hot path, so spans are only collected
in memory and the whole trace is written in one transaction when it ends."""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from typing import Any

from agents import set_trace_processors
from agents.tracing import Span, Trace, TracingProcessor

from mailagent.redact import redact_data
from mailagent.store import db
from mailagent.store.models import SpanRecord, TraceRecord

log = logging.getLogger(__name__)


def _when(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _columns(record: TraceRecord | SpanRecord) -> dict[str, Any]:
    return {column.name: getattr(record, column.name) for column in record.__table__.columns}  # type: ignore[attr-defined]


class DatabaseTraceProcessor(TracingProcessor):
    def __init__(self, url: str) -> None:
        self.url = url
        self._spans: dict[str, list[SpanRecord]] = {}
        self._lock = threading.Lock()

    def on_trace_start(self, trace: Trace) -> None:
        with self._lock:
            self._spans[trace.trace_id] = []

    def on_span_start(self, span: Span[Any]) -> None:
        pass

    def on_span_end(self, span: Span[Any]) -> None:
        exported = span.export() or {}
        data = redact_data(exported.get("span_data") or {})
        record = SpanRecord(
            id=span.span_id, trace_id=span.trace_id, parent_id=span.parent_id,
            kind=str(data.get("type", "")), name=str(data.get("name", "")),
            started_at=_when(span.started_at), ended_at=_when(span.ended_at), data=data,
            error=redact_data(span.error) if span.error else None,
        )
        with self._lock:
            self._spans.setdefault(span.trace_id, []).append(record)

    def on_trace_end(self, trace: Trace) -> None:
        with self._lock:
            spans = self._spans.pop(trace.trace_id, [])
        exported = trace.export() or {}
        record = TraceRecord(id=trace.trace_id, workflow=exported.get("workflow_name") or "",
                             group_id=exported.get("group_id"), meta=redact_data(exported.get("metadata") or {}))
        if spans:
            record.started_at = min((s.started_at for s in spans if s.started_at), default=record.started_at)
            record.ended_at = max((s.ended_at for s in spans if s.ended_at), default=None)
        try:
            with db.session(self.url) as s:
                s.execute(db.insert(s, TraceRecord).values(**_columns(record)).on_conflict_do_nothing())
                if spans:
                    s.execute(db.insert(s, SpanRecord).on_conflict_do_nothing(), [_columns(sp) for sp in spans])
        except Exception:  # noqa: BLE001 - a lost trace must never fail the customer's reply
            log.exception("could not store trace %s", trace.trace_id)

    def shutdown(self) -> None:
        self._spans.clear()

    def force_flush(self) -> None:
        pass


_installed: DatabaseTraceProcessor | None = None


def install(url: str, *, export_to_openai: bool = False) -> DatabaseTraceProcessor:
    """Send traces to the database (replacing the SDK's default exporter to OpenAI, unless the
    config asks to keep it)."""
    global _installed
    if _installed is None:
        _installed = DatabaseTraceProcessor(url)
        processors: list[TracingProcessor] = [_installed]
        if export_to_openai:
            from agents.tracing.processors import default_processor

            processors.append(default_processor())
        set_trace_processors(processors)
    _installed.url = url
    return _installed
