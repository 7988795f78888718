"""Agent traces kept in our own database, redacted, and exported nowhere unless configured.

The Agents SDK calls a processor synchronously on the run's hot path (on the event loop that runs
many agent runs), so spans are only collected in memory, as plain rows; when the trace ends they
wait for `persist`, which the run awaits in a thread: one transaction per trace, never a blocking
write on the loop."""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from typing import Any

from agents import set_trace_processors
from agents.tracing import Span, Trace, TracingProcessor

from mailagent.redact import redact_data
from mailagent.store import db, traces
from mailagent.store.models import now

log = logging.getLogger(__name__)


def _when(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


class DatabaseTraceProcessor(TracingProcessor):
    def __init__(self, url: str) -> None:
        self.url = url
        self._spans: dict[str, list[dict[str, Any]]] = {}
        self._ended: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]] = {}
        self._lock = threading.Lock()

    def on_trace_start(self, trace: Trace) -> None:
        with self._lock:
            self._spans[trace.trace_id] = []

    def on_span_start(self, span: Span[Any]) -> None:
        pass

    def on_span_end(self, span: Span[Any]) -> None:
        exported = span.export() or {}
        data = redact_data(exported.get("span_data") or {})
        row = {"id": span.span_id, "trace_id": span.trace_id, "parent_id": span.parent_id,
               "kind": str(data.get("type", "")), "name": str(data.get("name", "")),
               "started_at": _when(span.started_at), "ended_at": _when(span.ended_at), "data": data,
               "error": redact_data(span.error) if span.error else None}
        with self._lock:
            self._spans.setdefault(span.trace_id, []).append(row)

    def on_trace_end(self, trace: Trace) -> None:
        with self._lock:
            spans = self._spans.pop(trace.trace_id, [])
        exported = trace.export() or {}
        starts = [s["started_at"] for s in spans if s["started_at"]]
        ends = [s["ended_at"] for s in spans if s["ended_at"]]
        row = {"id": trace.trace_id, "workflow": exported.get("workflow_name") or "",
               "group_id": exported.get("group_id"), "meta": redact_data(exported.get("metadata") or {}),
               "started_at": min(starts) if starts else now(), "ended_at": max(ends) if ends else None}
        with self._lock:
            self._ended[trace.trace_id] = (row, spans)

    def persist(self) -> None:
        """Write the traces that ended, in one transaction (called off the event loop; runs that
        end together write together)."""
        with self._lock:
            ended, self._ended = list(self._ended.values()), {}
        if not ended:
            return
        try:
            with db.session(self.url) as s:
                traces.add(s, [row for row, _ in ended], [span for _, rows in ended for span in rows])
        except Exception:  # noqa: BLE001 - a lost trace must never fail the customer's reply
            log.exception("could not store %d trace(s)", len(ended))

    def shutdown(self) -> None:
        self._spans.clear()
        self._ended.clear()

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
