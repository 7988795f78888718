"""A rep's verdict on a held draft: send it (as written or edited) or reject it with a reason.
Both keep the draft-versus-final pair (a `Feedback` row) that the learning loop reads."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session

from mailagent.config import Settings
from mailagent.pipeline import outbox
from mailagent.review import ReviewError
from mailagent.store import db, tickets
from mailagent.store.models import (
    Conversation,
    Draft,
    DraftState,
    Feedback,
    Message,
    now,
)

REVIEWABLE = (DraftState.HELD, DraftState.ESCALATED)


@dataclass(frozen=True)
class Approved:
    draft: Draft
    outbound_id: int          # the reply in the outbox: hand it to the workers
    edited: bool


def approve(settings: Settings, draft_id: int, reviewer: str, text: str | None = None) -> Approved:
    """Send a held draft, or the rep's edit of it (`text`)."""
    with db.session(settings.database.url) as s:
        row = _reviewable(s, draft_id)
        final = text if text is not None else row.text
        if not final.strip():
            raise ReviewError(f"draft {draft_id} has no text to send: write the reply and send it as an edit")
        conversation, turn = s.get(Conversation, row.conversation_id), s.get(Message, row.message_id)
        assert conversation is not None and turn is not None
        outbound = outbox.queue_reply(s, settings, row.conversation_id, conversation.mailbox,
                                      outbox.Parent.of(turn), final, approved_by=reviewer)
        edited = text is not None and text.strip() != row.text.strip()
        row.state, row.outbound_id, row.final_text = DraftState.SENT, outbound.id, final
        row.reviewed_by, row.reviewed_at = reviewer, now()
        s.add(Feedback(draft_id=draft_id, conversation_id=row.conversation_id, verdict="edited" if edited else "approved",
                       draft_text=row.text, final_text=final, reviewer=reviewer))
        assert outbound.id is not None
        return Approved(row, outbound.id, edited)


def reject(settings: Settings, draft_id: int, reviewer: str, reason: str) -> Draft:
    """Nothing is sent; the reason is kept for the learning loop (never shown to the customer)."""
    if not reason.strip():
        raise ReviewError("a rejection needs a reason: it teaches the next draft")
    with db.session(settings.database.url) as s:
        row = _reviewable(s, draft_id)
        row.state, row.reject_reason, row.reviewed_by, row.reviewed_at = DraftState.REJECTED, reason, reviewer, now()
        s.add(Feedback(draft_id=draft_id, conversation_id=row.conversation_id, verdict="rejected",
                       draft_text=row.text, reason=reason, reviewer=reviewer))
        return row


def _reviewable(s: Session, draft_id: int) -> Draft:
    row = s.get(Draft, draft_id)
    if row is None:
        raise ReviewError(f"no draft with id {draft_id}")
    db.lock(s, f"conversation:{row.conversation_id}")
    s.refresh(row)
    if row.state not in REVIEWABLE:
        who = f" (reviewed by {row.reviewed_by})" if row.reviewed_by else ""
        raise ReviewError(f"draft {draft_id} is {row.state}{who}: only held or escalated drafts can be reviewed")
    newest = tickets.newest_turn(s, row.conversation_id)
    if newest is not None and newest != row.message_id:
        raise ReviewError(f"draft {draft_id} answers an older message: message {newest} arrived since "
                          "and gets its own draft")
    return row
