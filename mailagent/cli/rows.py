"""The fields of the list commands' rows (documented in the README), from ORM objects or the
plain rows of `store.listings` alike: both have the model's attribute names."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from datetime import datetime
from typing import Any


def iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value else None


def message_row(m: Any) -> dict[str, Any]:
    return {
        "id": m.id, "message_id": m.message_id, "conversation_id": m.conversation_id,
        "mailbox": m.mailbox, "source": m.source, "state": m.state, "kind": m.kind,
        "kind_reason": m.kind_reason, "parse_error": m.parse_error, "sha256": m.sha256,
        "from": m.from_addr, "from_name": m.from_name, "subject": m.subject,
        "sent_at": iso(m.sent_at), "received_at": iso(m.received_at),
        "attachments": m.attachments, "duplicates": m.duplicates,
    }


def conversation_row(c: Any, messages: int, replies: int) -> dict[str, Any]:
    return {
        "id": c.id, "channel": c.channel, "mailbox": c.mailbox, "helpdesk": c.helpdesk, "ticket_id": c.ticket_id,
        "customer": c.customer_addr, "customer_name": c.customer_name,
        "subject": c.subject, "state": c.state, "taken_by": c.taken_by, "messages": messages,
        "replies": replies, "created_at": iso(c.created_at), "last_message_at": iso(c.last_message_at),
    }


def draft_row(d: Any) -> dict[str, Any]:
    return {
        "id": d.id, "conversation_id": d.conversation_id, "message_id": d.message_id, "state": d.state,
        "decision": d.decision, "shadow": d.shadow, "rule": d.rule, "reasons": d.reasons,
        "confidence": d.confidence, "intent": d.intent, "language": d.language, "needs_human": d.needs_human,
        "needs_human_reason": d.needs_human_reason, "flags": d.flags, "cited": d.cited, "model": d.model,
        "prompt_version": d.prompt_version, "usage": d.usage, "trace_id": d.trace_id,
        "outbound_id": d.outbound_id, "reviewed_by": d.reviewed_by, "created_at": iso(d.created_at),
        "decided_at": iso(d.decided_at),
    }


def print_table(rows: Sequence[dict[str, Any]], columns: list[str]) -> None:
    """Rows as aligned columns cut to the terminal width; long cells are shortened with '…'."""
    if not rows:
        print("(none)")
        return
    width = shutil.get_terminal_size((160, 24)).columns
    cells = [[("" if r.get(c) is None else str(r.get(c))) for c in columns] for r in rows]
    sizes = [min(max(len(c), *(len(row[i]) for row in cells)), 48) for i, c in enumerate(columns)]
    for row in [[c.upper() for c in columns], *cells]:
        line = "  ".join(_cut(v, sizes[i]).ljust(sizes[i]) for i, v in enumerate(row))
        print(line[:width].rstrip())


def _cut(value: str, size: int) -> str:
    value = " ".join(value.split())
    return value if len(value) <= size else value[: size - 1] + "…"
