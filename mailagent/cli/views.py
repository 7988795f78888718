"""Read-only views of the database for people and programs: the rows behind `messages`,
`conversations` and friends, as plain dicts with stable field names (see the README)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, TypeVar

from mailagent.cli.common import NotFound
from mailagent.cli.rows import (
    conversation_row,
    draft_row,
    iso,
    message_row,
    terminal_safe,
)
from mailagent.store import audit as audit_log
from mailagent.store import db, listings, traces, views
from mailagent.store.models import (
    Action,
    AuditEntry,
    Conversation,
    Draft,
    Message,
    Outbound,
    SpanRecord,
)

T = TypeVar("T")
def _get(s: Any, model: type[T], ident: int, what: str) -> T:
    row = s.get(model, ident)
    if row is None:
        raise NotFound(f"no {what} with id {ident}")
    return row


def raw_message(url: str, ident: int) -> bytes:
    with db.reading(url) as s:
        return _get(s, Message, ident, "message").raw


def message_detail(url: str, ident: int) -> str:
    with db.reading(url) as s:
        m = _get(s, Message, ident, "message")
    lines = [f"{k:16} {v}" for k, v in message_row(m).items() if k != "attachments"]
    for a in m.attachments:
        lines.append(f"{'attachment':16} {a.get('filename') or '(no name)'} {a.get('content_type')} {a.get('size')} bytes")
    for d in m.defects:
        lines.append(f"{'defect':16} {d}")
    for title, text in (("new text", m.reply_text), ("quoted", m.quoted_text), ("signature", m.signature),
                        ("hidden in HTML (never shown to the agent as the customer's words)", m.hidden_text)):
        if text.strip():
            lines += ["", f"--- {title} ---", text.strip()]
    return terminal_safe("\n".join(lines))


def conversation_detail(url: str, ident: int) -> str:
    with db.reading(url) as s:
        c = _get(s, Conversation, ident, "conversation")
        inbound, outbound = views.conversation_mail(s, ident)
    lines = [f"{k:16} {v}" for k, v in conversation_row(c, len(inbound), len(outbound)).items()]
    timeline: list[tuple[datetime, str]] = []
    for m in inbound:
        head = f"<- message {m.id} from {m.from_addr} [{m.kind or m.state}]" + (
            f" PARSE ERROR: {m.parse_error}" if m.parse_error else "")
        timeline.append((m.received_at, f"{head}\n{_indent(m.reply_text or m.text)}"))
    for o in outbound:
        who = f"approved by {o.approved_by}" if o.approved_by else "automatic"
        head = f"-> reply {o.id} to {', '.join(o.recipients)} [{o.state}, {who}]" + (
            f" {o.last_error}" if o.last_error else "")
        timeline.append((o.created_at, f"{head}\n{_indent(o.body_text)}"))
    for at, text in sorted(timeline, key=lambda item: item[0]):
        lines += ["", f"{iso(at)} {text}"]
    return terminal_safe("\n".join(lines))


def _indent(text: str, limit: int = 1200) -> str:
    text = text.strip()
    if len(text) > limit:
        text = text[:limit] + " [...]"
    return "\n".join(f"    {line}" for line in text.splitlines())


def draft_model(url: str, ident: int) -> Draft:
    with db.reading(url) as s:
        return _get(s, Draft, ident, "draft")


def draft_detail(url: str, ident: int) -> str:
    with db.reading(url) as s:
        d = _get(s, Draft, ident, "draft")
        turn = s.get(Message, d.message_id)
        row = draft_row(d, listings.deliveries(url, [d.id or 0]).get(d.id or 0))
    lines = [f"{k:18} {v}" for k, v in row.items() if k not in ("reasons", "usage") and v not in (None, "", [])]
    lines += [f"{'reason':18} {r}" for r in d.reasons]
    if turn is not None and turn.parse_error:
        lines += ["", (f"--- customer message {turn.id}: not readable as mail ({turn.parse_error}); "
                       f"`mailagent messages show {turn.id} --raw` prints the stored bytes ---")]
    elif turn is not None:
        lines += ["", f"--- customer message {turn.id} from {turn.from_addr}: {turn.subject} ---",
                  (turn.reply_text or turn.text).strip()]
    lines += ["", "--- draft ---", d.text.strip() or "(no draft text: a rep writes the reply)"]
    if d.final_text and d.final_text.strip() != d.text.strip():
        lines += ["", f"--- sent after an edit by {d.reviewed_by} ---", d.final_text.strip()]
    return terminal_safe("\n".join(lines))


def trace_detail(url: str, conversation_id: int) -> str:
    """Every stored trace of a conversation, span by span, in order."""
    with db.reading(url) as s:
        runs, spans = traces.of_conversation(s, conversation_id)
    if not runs:
        raise NotFound(f"no traces for conversation {conversation_id}")
    lines = []
    for t in runs:
        lines.append(f"trace {t.id} {t.workflow} {iso(t.started_at)}")
        own = sorted((sp for sp in spans if sp.trace_id == t.id), key=lambda sp: (sp.started_at or t.started_at))
        depth = {sp.id: 0 for sp in own}
        for sp in own:
            depth[sp.id] = depth.get(sp.parent_id or "", -1) + 1
            lines.append(f"{'  ' * (depth[sp.id] + 1)}{sp.kind}: {sp.name} {_summary(sp)}".rstrip())
    return terminal_safe("\n".join(lines))


def _summary(span: SpanRecord) -> str:
    text = compact({k: v for k, v in span.data.items() if k not in ("type", "name")}, 400)
    return f"{text} ERROR {compact(span.error)}" if span.error else text


def action_row(a: Action) -> dict[str, Any]:
    return {
        "id": a.id, "conversation_id": a.conversation_id, "draft_id": a.draft_id, "tool": a.tool,
        "arguments": a.arguments, "amount": a.amount, "currency": a.currency, "state": a.state,
        "decided_by": a.decided_by, "reasons": a.reasons, "idempotency_key": a.idempotency_key,
        "result": a.result, "error": a.error, "created_at": iso(a.created_at),
        "decided_at": iso(a.decided_at), "executed_at": iso(a.executed_at),
    }


def actions(url: str, state: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
    with db.reading(url) as s:
        return [action_row(a) for a in views.newest(s, Action, limit + 1, state=state or None)]


def action_detail(url: str, ident: int) -> str:
    with db.reading(url) as s:
        a = _get(s, Action, ident, "action")
        trail = audit_log.trail(s, action_id=ident)
    lines = [f"{k:16} {json.dumps(v, ensure_ascii=False) if isinstance(v, dict | list) else v}"
             for k, v in action_row(a).items() if v not in (None, [], {})]
    lines += ["", "audit:"] + [f"  {iso(e.at)} {e.actor}: {e.event} {compact(e.details)}" for e in trail]
    return terminal_safe("\n".join(lines))


def audit_row(e: AuditEntry) -> dict[str, Any]:
    return {"id": e.id, "at": iso(e.at), "actor": e.actor, "event": e.event,
            "conversation_id": e.conversation_id, "draft_id": e.draft_id, "action_id": e.action_id,
            "details": e.details}


def audit(url: str, conversation_id: int | None = None, limit: int = 500) -> list[dict[str, Any]]:
    with db.reading(url) as s:
        return [audit_row(e) for e in views.newest(s, AuditEntry, limit + 1, conversation_id=conversation_id)]


def compact(value: Any, limit: int = 300) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[:limit] + " [...]"


def outbound_row(o: Outbound) -> dict[str, Any]:
    return {
        "id": o.id, "conversation_id": o.conversation_id, "mailbox": o.mailbox, "state": o.state,
        "recipients": o.recipients, "subject": o.subject, "approved_by": o.approved_by, "attempts": o.attempts,
        "next_attempt_at": iso(o.next_attempt_at), "smtp_phase": o.smtp_phase, "smtp_last_reply": o.smtp_last_reply,
        "last_error": o.last_error, "smtp_response": o.smtp_response, "refused": o.refused,
        "message_id": o.message_id, "created_at": iso(o.created_at), "sent_at": iso(o.sent_at),
        "resolved_by": o.resolved_by, "resolved_at": iso(o.resolved_at),
    }


def outbounds(url: str, state: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
    with db.reading(url) as s:
        return [outbound_row(o) for o in views.newest(s, Outbound, limit + 1, state=state or None)]


def outbound_detail(url: str, ident: int) -> str:
    """A reply in the outbox: where its SMTP transaction got and what the server last said, so a
    rep can settle an unknown delivery; then the reply itself."""
    with db.reading(url) as s:
        o = _get(s, Outbound, ident, "reply in the outbox")
        trail = audit_log.trail(s, conversation_id=o.conversation_id)
    lines = [f"{k:16} {v}" for k, v in outbound_row(o).items() if v not in (None, "", [], {})]
    lines += [f"{'audit':16} {iso(e.at)} {e.actor} {e.event} {compact(e.details, 160)}" for e in trail
              if e.details.get("outbound_id") == ident]
    return "\n".join([*lines, "", f"--- reply to {', '.join(o.recipients)}: {o.subject} ---", o.body_text.strip()])
