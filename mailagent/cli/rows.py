"""The fields of the list commands' rows (documented in the README), from ORM objects or the
plain rows of `store.listings` alike: both have the model's attribute names."""

from __future__ import annotations

import re
import shutil
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from mailagent.cli.common import print_json

# Control characters (C0, DEL, C1) and bidirectional overrides: written as escapes, so customer
# text can neither move the cursor, recolour or clear the terminal, nor reorder what a rep reads.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def terminal_safe(text: str) -> str:
    """Text as it may be printed to a terminal: newlines and tabs kept, other control
    characters shown as `\\xNN` / `\\uNNNN` escapes."""
    return _UNSAFE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text.replace("\r\n", "\n"))


def iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value else None


def message_row(m: Any) -> dict[str, Any]:
    return {
        "id": m.id, "message_id": m.message_id, "conversation_id": m.conversation_id,
        "mailbox": m.mailbox, "source": m.source, "state": m.state, "kind": m.kind,
        "kind_reason": m.kind_reason, "parse_error": m.parse_error, "sha256": m.sha256,
        "from": m.from_addr, "from_name": m.from_name, "subject": m.subject,
        "sent_at": iso(m.sent_at), "received_at": iso(m.received_at),
        "attachments": m.attachments, "duplicates": m.duplicates, "attempts": m.attempts, "error": m.error,
    }


def conversation_row(c: Any, messages: int, replies: int) -> dict[str, Any]:
    return {
        "id": c.id, "channel": c.channel, "mailbox": c.mailbox, "helpdesk": c.helpdesk, "ticket_id": c.ticket_id,
        "customer": c.customer_addr, "customer_name": c.customer_name,
        "subject": c.subject, "state": c.state, "taken_by": c.taken_by, "messages": messages,
        "replies": replies, "created_at": iso(c.created_at), "last_message_at": iso(c.last_message_at),
    }


def draft_row(d: Any, delivery: tuple[str, str | None] | None = None) -> dict[str, Any]:
    """A draft, with how far its reply got when it has one (`store.listings.deliveries`)."""
    return {
        "id": d.id, "conversation_id": d.conversation_id, "message_id": d.message_id, "state": d.state,
        "decision": d.decision, "shadow": d.shadow, "rule": d.rule, "reasons": d.reasons,
        "confidence": d.confidence, "intent": d.intent, "language": d.language, "needs_human": d.needs_human,
        "needs_human_reason": d.needs_human_reason, "flags": d.flags, "cited": d.cited, "model": d.model,
        "prompt_version": d.prompt_version, "usage": d.usage, "trace_id": d.trace_id,
        "outbound_id": d.outbound_id, "delivery": delivery[0] if delivery else None,
        "delivery_error": delivery[1] if delivery else None, "reviewed_by": d.reviewed_by,
        "created_at": iso(d.created_at), "decided_at": iso(d.decided_at),
    }


def newest(rows: Sequence[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    """The newest `limit` of rows fetched with one more than asked (oldest first); when more exist,
    stderr says so: a list is never cut silently."""
    if len(rows) <= limit:
        return list(rows)
    print(f"(the newest {limit} shown, more exist: --limit N shows more)", file=sys.stderr)
    return list(rows[len(rows) - limit:])


def print_listing(rows: Sequence[dict[str, Any]], args: Any, columns: list[str]) -> None:
    """The rows of a list command (fetched with `--limit` + 1) as JSON (`--json`) or a table."""
    rows = newest(rows, args.limit)
    if args.json:
        print_json(rows)
    else:
        print_table(rows, columns)


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
    value = terminal_safe(" ".join(value.split()))
    return value if len(value) <= size else value[: size - 1] + "…"
