"""A bounce of one of our replies: the delivery marked failed, and the turn back with a person.

The bounce itself is never answered (it is automated mail); it joins the conversation of the reply
it reports (threading follows the report's original Message-ID), that reply goes from `sent` (or
`unknown`) to `failed` with the report's status and diagnostic, and the draft that produced it is
held again with `needs_human`, so the review queue shows a customer who did not get an answer.
"""

from __future__ import annotations

from mailagent.mail.dsn import DeliveryReport
from mailagent.store import audit, drafts, outbound
from mailagent.store.db import Session
from mailagent.store.models import DraftState, Message, Outbound, OutboundState

BOUNCED_RULE = "invariant: our reply bounced"


def link(s: Session, bounce: Message, report: DeliveryReport) -> Outbound | None:
    """The reply `report` is about, if we sent it, updated as above (the caller's transaction)."""
    if not report.original_ids:
        return None
    row = outbound.by_message_ids(s, report.original_ids)
    if row is None:
        return None
    if not report.failed or row.state not in (OutboundState.SENT, OutboundState.UNKNOWN):
        return row                          # a delay notice, or a reply already marked failed
    summary = report.summary()
    row.state, row.last_error = OutboundState.FAILED, f"bounced (message {bounce.id}): {summary}"
    reason = (f"reply {row.id} to {', '.join(row.recipients)} bounced: {summary}. The customer did not get "
              "it: check the address, then send it again (approve) or answer another way (reject)")
    draft = drafts.sent_as(s, row.id or 0)
    if draft is not None:
        draft.state, draft.decision, draft.rule = DraftState.HELD, "hold", BOUNCED_RULE
        draft.needs_human, draft.needs_human_reason = True, reason
        draft.reasons = [reason, *draft.reasons]
        draft.flags = list(dict.fromkeys([*draft.flags, "reply_bounced"]))
    audit.record(s, "mailagent", "reply_bounced", conversation_id=row.conversation_id,
                 draft_id=draft.id if draft else None, outbound_id=row.id, bounce_message_id=bounce.id,
                 report=summary)
    return row
