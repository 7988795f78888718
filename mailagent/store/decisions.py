"""A claimed draft's row as the decision reads and writes it: one SELECT under the conversation's
lock, one UPDATE at the end, in SQLAlchemy Core (statements built once, compiled once).

`DraftRow` is a plain object with the columns of `Draft` the pipeline fills in; nothing tracks it,
so `save` writes exactly those columns. The few callers that need the ORM object (helpdesk
notes, proposals) get it with `orm` after `save`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import Table, bindparam, insert, select, update
from sqlmodel import Session

from mailagent.store import audit, db
from mailagent.store.models import (
    Action,
    ActionState,
    Draft,
    DraftState,
    SpanRecord,
    now,
)


@dataclass
class DraftRow:
    """The columns of a draft the drafting stage reads and decides (see `Draft`)."""

    id: int
    conversation_id: int
    state: str
    lease_owner: str | None
    lease_until: datetime | None
    text: str
    confidence: float
    intent: str
    language: str
    needs_human: bool
    needs_human_reason: str
    cited: list[str]
    flags: list[str]
    decision: str | None
    shadow: bool
    rule: str | None
    policy_version: str
    reasons: list[str]
    facts: dict[str, Any]
    model: str
    prompt_version: str
    usage: dict[str, int]
    trace_id: str | None
    error: str | None
    run_state: str | None
    request: dict[str, Any] | None
    outbound_id: int | None
    decided_at: datetime | None


def locked(s: Session, draft_id: int, conversation_id: int, owner: str) -> DraftRow | None:
    """The draft, under its conversation's lock, if `owner` still holds it."""
    db.lock(s, f"conversation:{conversation_id}")
    found = s.connection().execute(_READ, {"d": draft_id}).first()
    if found is None or found.state != DraftState.DRAFTING or found.lease_owner != owner:
        return None
    return DraftRow(**found._mapping)


def save(s: Session, row: DraftRow) -> None:
    """Write the row's columns back (the caller's transaction)."""
    s.connection().execute(_WRITE, {"d": row.id, **{f"v_{name}": getattr(row, name) for name in _WRITTEN}})


def orm(s: Session, row: DraftRow) -> Draft:
    """The ORM object of a saved row, for the callers that take one."""
    draft = s.get(Draft, row.id, populate_existing=True)
    assert draft is not None
    return draft


def supersede_older(s: Session, row: DraftRow) -> None:
    """A draft for an older turn must not be approved, nor its actions run, once a newer one was
    decided: its proposed actions are rejected (audited), the draft superseded."""
    conn = s.connection()
    ids = list(conn.execute(_OLDER, {"c": row.conversation_id, "d": row.id}).scalars())
    if not ids:
        return
    reasons = [f"superseded by draft {row.id}"]
    for action in conn.execute(_PROPOSED, {"ids": ids}).all():
        conn.execute(_REJECT, {"a": action.id, "at": now(), "r": reasons})
        audit.record(s, "system", "rejected", conversation_id=action.conversation_id, draft_id=action.draft_id,
                     action_id=action.id, reasons=reasons)
    conn.execute(_SUPERSEDE, {"ids": ids, "r": reasons})


def add_span(s: Session, **values: Any) -> None:
    """A span of the draft's trace, written with the decision (the policy's step)."""
    s.connection().execute(_SPAN, values)


def _table(model: Any) -> Table:
    return model.__table__  # type: ignore[no-any-return]


_d, _a, _span = _table(Draft), _table(Action), _table(SpanRecord)
_COLUMNS = [f.name for f in fields(DraftRow)]
_WRITTEN = [name for name in _COLUMNS if name not in ("id", "conversation_id")]
_READ = select(*(_d.c[name] for name in _COLUMNS)).where(_d.c.id == bindparam("d"))
_WRITE = update(_d).where(_d.c.id == bindparam("d")).values({name: bindparam(f"v_{name}") for name in _WRITTEN})
_OLDER = select(_d.c.id).where(_d.c.conversation_id == bindparam("c"), _d.c.id != bindparam("d"),
                               _d.c.state.in_([DraftState.HELD.value, DraftState.ESCALATED.value,
                                               DraftState.WAITING.value]))
_PROPOSED = select(_a.c.id, _a.c.draft_id, _a.c.conversation_id).where(
    _a.c.draft_id.in_(bindparam("ids", expanding=True)), _a.c.state == ActionState.PROPOSED.value)
_REJECT = update(_a).where(_a.c.id == bindparam("a")).values(
    state=ActionState.REJECTED.value, decided_by="system", decided_at=bindparam("at"), reasons=bindparam("r"))
_SUPERSEDE = update(_d).where(_d.c.id.in_(bindparam("ids", expanding=True))).values(
    state=DraftState.SUPERSEDED.value, run_state=None, reasons=bindparam("r"))
_SPAN = insert(_span)
