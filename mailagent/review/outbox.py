"""A rep's verbs on the outbox: retry a reply that failed, settle one whose delivery is unknown.

A retry puts the same composed bytes back in the outbox, to go out by the one send path
(`pipeline.outbox.deliver`, claimed before sending): only a `failed` reply can be retried, so a
delivered one is never sent twice. An `unknown` reply (the connection dropped while the server
had the message, or the worker died mid-send) is never retried as it is: a rep first checks (the
SMTP phase and the server's last answer are kept) and resolves it as delivered or failed; a
failed one may then be retried. Every verb is audit-logged in its transaction.
"""

from __future__ import annotations

from mailagent.config import Settings
from mailagent.review import ReviewError
from mailagent.store import audit, db
from mailagent.store.db import Session
from mailagent.store.models import Outbound, OutboundState, now


def retry(settings: Settings, outbound_id: int, rep: str) -> Outbound:
    """Queue a failed reply again (the caller hands it to delivery, see `worker.dispatch`)."""
    with db.session(settings.database.url) as s:
        return retry_in(s, outbound_id, rep)


def retry_in(s: Session, outbound_id: int, rep: str) -> Outbound:
    row = _row(s, outbound_id)
    if row.state != OutboundState.FAILED:
        raise ReviewError(f"reply {outbound_id} is {row.state}: {_why_not_retried(row.state)}")
    previous = row.last_error
    row.state, row.attempts, row.next_attempt_at = OutboundState.QUEUED, 0, now()
    audit.record(s, rep, "delivery_retried", conversation_id=row.conversation_id, outbound_id=outbound_id,
                 previous_error=previous)
    return row


def resolve(settings: Settings, outbound_id: int, rep: str, *, delivered: bool, note: str = "") -> Outbound:
    """Settle an unknown outcome: the rep checked and says it was, or was not, delivered."""
    with db.session(settings.database.url) as s:
        return resolve_in(s, outbound_id, rep, delivered=delivered, note=note)


def resolve_in(s: Session, outbound_id: int, rep: str, *, delivered: bool, note: str = "") -> Outbound:
    row = _row(s, outbound_id)
    if row.state != OutboundState.UNKNOWN:
        raise ReviewError(f"reply {outbound_id} is {row.state}: only an unknown delivery is resolved by hand")
    at = now()
    row.resolved_by, row.resolved_at = rep, at
    if delivered:
        row.state, row.sent_at = OutboundState.SENT, at
    else:
        row.state = OutboundState.FAILED
        row.last_error = f"not delivered, said {rep}" + (f": {note}" if note else "") + f" (was: {row.last_error})"
    audit.record(s, rep, "delivery_resolved", conversation_id=row.conversation_id, outbound_id=outbound_id,
                 resolved_as="delivered" if delivered else "failed", note=note, smtp_phase=row.smtp_phase,
                 smtp_last_reply=row.smtp_last_reply)
    return row


def _row(s: Session, outbound_id: int) -> Outbound:
    row = s.get(Outbound, outbound_id, with_for_update=True)
    if row is None:
        raise ReviewError(f"no reply with id {outbound_id} in the outbox")
    return row


def _why_not_retried(state: str) -> str:
    return {
        OutboundState.SENT: "it was delivered; retrying would send it twice",
        OutboundState.UNKNOWN: "it may have been delivered: check, then `outbox resolve` it as delivered or failed",
        OutboundState.QUEUED: "it is already waiting for delivery",
        OutboundState.SENDING: "it is being sent now",
    }.get(state, "only a failed reply can be retried")
