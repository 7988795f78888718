"""Read-only views of the database for people and programs: the rows behind `messages`,
`conversations` and friends, as plain dicts with stable field names (see the README)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import func
from sqlmodel import col, select

from mailagent.cli.common import NotFound
from mailagent.store import db
from mailagent.store.models import (
    Action,
    AuditEntry,
    Conversation,
    Draft,
    Message,
    Outbound,
    SpanRecord,
    TraceRecord,
)

T = TypeVar("T")


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value else None


def message_row(m: Message) -> dict[str, Any]:
    return {
        "id": m.id, "message_id": m.message_id, "conversation_id": m.conversation_id,
        "mailbox": m.mailbox, "source": m.source, "state": m.state, "kind": m.kind,
        "kind_reason": m.kind_reason, "parse_error": m.parse_error, "sha256": m.sha256,
        "from": m.from_addr, "from_name": m.from_name, "subject": m.subject,
        "sent_at": _iso(m.sent_at), "received_at": _iso(m.received_at),
        "attachments": m.attachments, "duplicates": m.duplicates, "attempts": m.attempts, "error": m.error,
    }


def messages(url: str, limit: int = 200) -> list[dict[str, Any]]:
    with db.reading(url) as s:
        rows = s.exec(select(Message).order_by(col(Message.id).desc()).limit(limit)).all()
        return [message_row(m) for m in reversed(rows)]


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
    return "\n".join(lines)


def conversation_row(c: Conversation, messages: int, replies: int) -> dict[str, Any]:
    return {
        "id": c.id, "channel": c.channel, "mailbox": c.mailbox, "helpdesk": c.helpdesk, "ticket_id": c.ticket_id,
        "customer": c.customer_addr, "customer_name": c.customer_name,
        "subject": c.subject, "state": c.state, "taken_by": c.taken_by, "messages": messages,
        "replies": replies, "created_at": _iso(c.created_at), "last_message_at": _iso(c.last_message_at),
    }


def _counts(s: Any, model: type[Message] | type[Outbound]) -> dict[int, int]:
    column = model.conversation_id  # type: ignore[union-attr]
    return dict(s.exec(select(column, func.count()).group_by(column)).all())


def conversations(url: str, limit: int = 200) -> list[dict[str, Any]]:
    with db.reading(url) as s:
        rows = s.exec(select(Conversation).order_by(col(Conversation.id).desc()).limit(limit)).all()
        inbound, outbound = _counts(s, Message), _counts(s, Outbound)
        return [conversation_row(c, inbound.get(c.id, 0), outbound.get(c.id, 0)) for c in reversed(rows)]


def conversation_detail(url: str, ident: int) -> str:
    with db.reading(url) as s:
        c = _get(s, Conversation, ident, "conversation")
        inbound = s.exec(select(Message).where(Message.conversation_id == ident)).all()
        outbound = s.exec(select(Outbound).where(Outbound.conversation_id == ident)).all()
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
        lines += ["", f"{_iso(at)} {text}"]
    return "\n".join(lines)


def _indent(text: str, limit: int = 1200) -> str:
    text = text.strip()
    if len(text) > limit:
        text = text[:limit] + " [...]"
    return "\n".join(f"    {line}" for line in text.splitlines())


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


def draft_row(d: Draft, delivery: str | None = None) -> dict[str, Any]:
    """`delivery`: the state of the draft's reply in the outbox, when it has one."""
    return {
        "id": d.id, "conversation_id": d.conversation_id, "message_id": d.message_id, "state": d.state,
        "decision": d.decision, "shadow": d.shadow, "rule": d.rule, "reasons": d.reasons,
        "confidence": d.confidence, "intent": d.intent, "language": d.language, "needs_human": d.needs_human,
        "needs_human_reason": d.needs_human_reason, "flags": d.flags, "cited": d.cited, "model": d.model,
        "prompt_version": d.prompt_version, "usage": d.usage, "trace_id": d.trace_id,
        "outbound_id": d.outbound_id, "delivery": delivery, "reviewed_by": d.reviewed_by,
        "created_at": _iso(d.created_at), "decided_at": _iso(d.decided_at),
    }


def drafts(url: str, state: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
    with db.reading(url) as s:
        query = (select(Draft, Outbound.state).outerjoin(Outbound, col(Draft.outbound_id) == Outbound.id)
                 .order_by(col(Draft.id).desc()).limit(limit))
        if state:
            query = query.where(Draft.state == state)
        return [draft_row(d, delivery) for d, delivery in reversed(s.exec(query).all())]


def draft_model(url: str, ident: int) -> Draft:
    with db.reading(url) as s:
        return _get(s, Draft, ident, "draft")


def draft_detail(url: str, ident: int) -> str:
    with db.reading(url) as s:
        d = _get(s, Draft, ident, "draft")
        turn = s.get(Message, d.message_id)
        reply = s.get(Outbound, d.outbound_id) if d.outbound_id else None
    row = draft_row(d, reply.state if reply else None)
    lines = [f"{k:18} {v}" for k, v in row.items() if k not in ("reasons", "usage") and v not in (None, "", [])]
    lines += [f"{'reason':18} {r}" for r in d.reasons]
    if turn is not None:
        lines += ["", f"--- customer message {turn.id} from {turn.from_addr}: {turn.subject} ---",
                  (turn.reply_text or turn.text).strip()]
    lines += ["", "--- draft ---", d.text.strip() or "(no draft text: a rep writes the reply)"]
    if d.final_text and d.final_text.strip() != d.text.strip():
        lines += ["", f"--- sent after an edit by {d.reviewed_by} ---", d.final_text.strip()]
    return "\n".join(lines)


def trace_detail(url: str, conversation_id: int) -> str:
    """Every stored trace of a conversation, span by span, in order."""
    with db.reading(url) as s:
        traces = s.exec(select(TraceRecord).where(TraceRecord.group_id == str(conversation_id))
                        .order_by(col(TraceRecord.started_at))).all()
        if not traces:
            raise NotFound(f"no traces for conversation {conversation_id}")
        spans = s.exec(select(SpanRecord).where(col(SpanRecord.trace_id).in_([t.id for t in traces]))).all()
    lines = []
    for t in traces:
        lines.append(f"trace {t.id} {t.workflow} {_iso(t.started_at)}")
        own = sorted((sp for sp in spans if sp.trace_id == t.id), key=lambda sp: (sp.started_at or t.started_at))
        depth = {sp.id: 0 for sp in own}
        for sp in own:
            depth[sp.id] = depth.get(sp.parent_id or "", -1) + 1
            lines.append(f"{'  ' * (depth[sp.id] + 1)}{sp.kind}: {sp.name} {_summary(sp)}".rstrip())
    return "\n".join(lines)


def _summary(span: SpanRecord) -> str:
    text = compact({k: v for k, v in span.data.items() if k not in ("type", "name")}, 400)
    return f"{text} ERROR {compact(span.error)}" if span.error else text


def action_row(a: Action) -> dict[str, Any]:
    return {
        "id": a.id, "conversation_id": a.conversation_id, "draft_id": a.draft_id, "tool": a.tool,
        "arguments": a.arguments, "amount": a.amount, "currency": a.currency, "state": a.state,
        "decided_by": a.decided_by, "reasons": a.reasons, "idempotency_key": a.idempotency_key,
        "result": a.result, "error": a.error, "created_at": _iso(a.created_at),
        "decided_at": _iso(a.decided_at), "executed_at": _iso(a.executed_at),
    }


def actions(url: str, state: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
    with db.reading(url) as s:
        query = select(Action).order_by(col(Action.id).desc()).limit(limit)
        if state:
            query = query.where(Action.state == state)
        return [action_row(a) for a in reversed(s.exec(query).all())]


def action_detail(url: str, ident: int) -> str:
    with db.reading(url) as s:
        a = _get(s, Action, ident, "action")
        trail = s.exec(select(AuditEntry).where(AuditEntry.action_id == ident).order_by(col(AuditEntry.id))).all()
    lines = [f"{k:16} {json.dumps(v, ensure_ascii=False) if isinstance(v, dict | list) else v}"
             for k, v in action_row(a).items() if v not in (None, [], {})]
    lines += ["", "audit:"] + [f"  {_iso(e.at)} {e.actor}: {e.event} {compact(e.details)}" for e in trail]
    return "\n".join(lines)


def audit_row(e: AuditEntry) -> dict[str, Any]:
    return {"id": e.id, "at": _iso(e.at), "actor": e.actor, "event": e.event,
            "conversation_id": e.conversation_id, "draft_id": e.draft_id, "action_id": e.action_id,
            "details": e.details}


def audit(url: str, conversation_id: int | None = None, limit: int = 500) -> list[dict[str, Any]]:
    with db.reading(url) as s:
        query = select(AuditEntry).order_by(col(AuditEntry.id).desc()).limit(limit)
        if conversation_id is not None:
            query = query.where(AuditEntry.conversation_id == conversation_id)
        return [audit_row(e) for e in reversed(s.exec(query).all())]


def compact(value: Any, limit: int = 300) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[:limit] + " [...]"


def outbound_row(o: Outbound) -> dict[str, Any]:
    return {
        "id": o.id, "conversation_id": o.conversation_id, "mailbox": o.mailbox, "state": o.state,
        "recipients": o.recipients, "subject": o.subject, "approved_by": o.approved_by, "attempts": o.attempts,
        "next_attempt_at": _iso(o.next_attempt_at), "smtp_phase": o.smtp_phase, "smtp_last_reply": o.smtp_last_reply,
        "last_error": o.last_error, "smtp_response": o.smtp_response, "refused": o.refused,
        "message_id": o.message_id, "created_at": _iso(o.created_at), "sent_at": _iso(o.sent_at),
        "resolved_by": o.resolved_by, "resolved_at": _iso(o.resolved_at),
    }


def outbounds(url: str, state: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
    with db.reading(url) as s:
        query = select(Outbound).order_by(col(Outbound.id).desc()).limit(limit)
        if state:
            query = query.where(Outbound.state == state)
        return [outbound_row(o) for o in reversed(s.exec(query).all())]


def outbound_detail(url: str, ident: int) -> str:
    """A reply in the outbox: where its SMTP transaction got and what the server last said, so a
    rep can settle an unknown delivery; then the reply itself."""
    with db.reading(url) as s:
        o = _get(s, Outbound, ident, "reply in the outbox")
        trail = s.exec(select(AuditEntry).where(AuditEntry.conversation_id == o.conversation_id)
                       .order_by(col(AuditEntry.id))).all()
    lines = [f"{k:16} {v}" for k, v in outbound_row(o).items() if v not in (None, "", [], {})]
    lines += [f"{'audit':16} {_iso(e.at)} {e.actor} {e.event} {compact(e.details, 160)}" for e in trail
              if e.details.get("outbound_id") == ident]
    return "\n".join([*lines, "", f"--- reply to {', '.join(o.recipients)}: {o.subject} ---", o.body_text.strip()])
