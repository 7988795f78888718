"""The outbox's rows: queued, claimed, finished, in SQLAlchemy Core (statements built once), and
found by what other mail says about them.

A claim is one conditional UPDATE that returns what sending needs, so two deliveries of the same
broker message cannot both send; the outcome is written in one UPDATE after the send.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table, bindparam, insert, select, update
from sqlmodel import Session, col
from sqlmodel import select as orm_select

from mailagent.store.models import Outbound, OutboundState, now


@dataclass(frozen=True)
class Claimed:
    """A reply this worker may send now."""

    mailbox: str
    sender: str
    recipients: list[str]
    raw: bytes
    attempts: int                      # this one included


def add(s: Session, **values: Any) -> int:
    """A new queued reply (the caller's transaction); its id."""
    return int(s.connection().execute(_ADD, {"refused": {}, **values}).scalar_one())


def claim(s: Session, outbound_id: int) -> Claimed | None:
    """Move a queued reply that is due to `sending`; None when it is not due or not queued."""
    t = now()
    row = s.connection().execute(_CLAIM, {"o": outbound_id, "t": t}).first()
    return Claimed(**row._mapping) if row else None


def finish(s: Session, outbound_id: int, **values: Any) -> None:
    """Record an attempt's outcome (state, errors, the SMTP conversation's last words). One
    statement per set of columns an outcome writes, built on first use."""
    columns = tuple(sorted(values))
    if columns not in _FINISH:
        _FINISH[columns] = update(_o).where(_o.c.id == bindparam("o")).values(
            {name: bindparam(f"v_{name}") for name in columns})
    s.connection().execute(_FINISH[columns], {"o": outbound_id, **{f"v_{k}": v for k, v in values.items()}})


def stale_sending(s: Session, deadline: datetime, error: str) -> list[int]:
    """Rows in `sending` since before `deadline` (their worker died mid-send), now `unknown`."""
    conn = s.connection()
    stale = list(conn.execute(_STALE, {"deadline": deadline}).scalars())
    if stale:
        conn.execute(_UNKNOWN, {"ids": stale, "error": error})
    return stale


def sent_copy(s: Session, outbound_id: int) -> Any:
    """What saving a reply to the Sent folder needs: mailbox, raw, state, saved_to_sent, sent_at."""
    return s.connection().execute(_SENT_COPY, {"o": outbound_id}).first()


def mark_saved(s: Session, outbound_id: int) -> None:
    s.connection().execute(_SAVED, {"o": outbound_id})


def by_message_ids(s: Session, message_ids: Sequence[str]) -> Outbound | None:
    """The reply sent with one of these Message-IDs (a bounce names them), locked for the update."""
    return s.exec(orm_select(Outbound).where(col(Outbound.message_id).in_(message_ids)).with_for_update()).first()


def _table(model: Any) -> Table:
    return model.__table__  # type: ignore[no-any-return]


_o = _table(Outbound)
_ADD = insert(_o).returning(_o.c.id)
_CLAIM = (update(_o).where(_o.c.id == bindparam("o"), _o.c.state == OutboundState.QUEUED.value,
                           _o.c.next_attempt_at <= bindparam("t"))
          .values(state=OutboundState.SENDING.value, sending_started_at=bindparam("t"), attempts=_o.c.attempts + 1)
          .returning(_o.c.mailbox, _o.c.sender, _o.c.recipients, _o.c.raw, _o.c.attempts))
_STALE = select(_o.c.id).where(_o.c.state == OutboundState.SENDING.value, _o.c.sending_started_at < bindparam("deadline"))
_UNKNOWN = (update(_o).where(_o.c.id.in_(bindparam("ids", expanding=True)), _o.c.state == OutboundState.SENDING.value)
            .values(state=OutboundState.UNKNOWN.value, last_error=bindparam("error")))
_SENT_COPY = select(_o.c.mailbox, _o.c.raw, _o.c.state, _o.c.saved_to_sent, _o.c.sent_at).where(_o.c.id == bindparam("o"))
_FINISH: dict[tuple[str, ...], Any] = {}
_SAVED = update(_o).where(_o.c.id == bindparam("o")).values(saved_to_sent=True)
