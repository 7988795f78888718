"""A rep's verdict on a held draft: send it (as written or edited) or reject it with a reason, or
(in a helpdesk) the final a rep already sent there. Each keeps the draft-versus-final pair (a
`Feedback` row) that the learning loop reads.

Each verb has a form that runs in the caller's transaction (`*_in`), for a helpdesk event that
applies several decisions with the messages it stored, all or nothing."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from mailagent.config import Settings
from mailagent.pipeline import outbox
from mailagent.review import ReviewError
from mailagent.store import audit, db, tickets
from mailagent.store.db import Session
from mailagent.store.models import (
    Conversation,
    Draft,
    DraftState,
    Feedback,
    Message,
    now,
)

REVIEWABLE = (DraftState.HELD, DraftState.ESCALATED)
EDITED_AT_LEAST = 0.5       # word similarity from which a rep's own reply counts as an edit of the draft


@dataclass(frozen=True)
class Approved:
    draft: Draft
    outbound_id: int | None   # mail: the reply in the outbox, to hand to the workers ...
    edited: bool
    post_id: int | None = None  # ... helpdesk: the public reply in the post ledger


def held(settings: Settings, draft_id: int) -> bool:
    """Whether a draft waits in the review queue with a reply to send (after an action was
    decided, the rep is shown it)."""
    with db.reading(settings.database.url) as s:
        row = s.get(Draft, draft_id)
    return row is not None and row.state == DraftState.HELD and bool(row.text.strip())


def approve(settings: Settings, draft_id: int, reviewer: str, text: str | None = None) -> Approved:
    """Send a held draft, or the rep's edit of it (`text`)."""
    with db.session(settings.database.url) as s:
        return approve_in(s, settings, draft_id, reviewer, text)


def approve_in(s: Session, settings: Settings, draft_id: int, reviewer: str, text: str | None = None, *,
               author_id: str | None = None, remove_tags: tuple[str, ...] = ()) -> Approved:
    """`approve` in the caller's transaction. A helpdesk ticket's reply is posted under
    `author_id` (the rep's helpdesk user) and removes `remove_tags` with the same update."""
    row = _reviewable(s, draft_id)
    final = text if text is not None else row.text
    if not final.strip():
        raise ReviewError(f"draft {draft_id} has no text to send: write the reply and send it as an edit")
    conversation, turn = s.get(Conversation, row.conversation_id), s.get(Message, row.message_id)
    assert conversation is not None and turn is not None
    if conversation.helpdesk is None and outbox.reply_mailbox(settings, conversation.mailbox) is None:
        raise ReviewError(f"draft {draft_id}: {outbox.NO_MAILBOX}")
    queued = outbox.queue(s, settings, conversation, outbox.Parent.of(turn), final, approved_by=reviewer, draft_id=draft_id,
                          author_id=author_id, remove_tags=remove_tags)
    edited = text is not None and text.strip() != row.text.strip()
    row.outbound_id = queued.outbound_id
    _final(s, row, final, "edited" if edited else "approved", reviewer,
           outbound_id=queued.outbound_id, post_id=queued.post_id)
    return Approved(row, queued.outbound_id, edited, queued.post_id)


def reject(settings: Settings, draft_id: int, reviewer: str, reason: str) -> Draft:
    """Nothing is sent; the reason is kept for the learning loop (never shown to the customer)."""
    with db.session(settings.database.url) as s:
        return reject_in(s, draft_id, reviewer, reason)


def reject_in(s: Session, draft_id: int, reviewer: str, reason: str) -> Draft:
    if not reason.strip():
        raise ReviewError("a rejection needs a reason: it teaches the next draft")
    row = _reviewable(s, draft_id)
    row.state, row.reject_reason, row.reviewed_by, row.reviewed_at = DraftState.REJECTED, reason, reviewer, now()
    s.add(Feedback(draft_id=draft_id, conversation_id=row.conversation_id, verdict="rejected",
                   draft_text=row.text, reason=reason, reviewer=reviewer))
    audit.record(s, reviewer, "draft_rejected", conversation_id=row.conversation_id, draft_id=draft_id, reason=reason)
    return row


def sent_by_rep_in(s: Session, draft_id: int, reviewer: str, text: str, *, from_draft: bool,
                   before_message: int) -> tuple[Draft, str]:
    """A rep already sent the final in the helpdesk (our draft reply, sent as is or edited, or
    their own reply): nothing to send, the final and its verdict are kept; (draft, verdict).
    `before_message` is the rep's reply as stored: the draft must answer an earlier turn."""
    row = _reviewable(s, draft_id, answered_by=before_message)
    verdict = final_verdict(row.text, text, from_draft=from_draft)
    # the same words as the draft: the draft is the final (the helpdesk's rendering only changed its lines)
    _final(s, row, row.text if verdict == "approved" else text, verdict, reviewer, sent_in_helpdesk=True)
    return row, verdict


def final_verdict(draft: str, final: str, *, from_draft: bool) -> str:
    """`approved` (the draft as it was), `edited` (the draft changed: sent from it, or mostly the
    same words), or `rep-written` (the rep's own reply)."""
    ours, theirs = _words(draft), _words(final)
    if ours == theirs:
        return "approved"
    if from_draft or difflib.SequenceMatcher(None, ours, theirs, autojunk=False).ratio() >= EDITED_AT_LEAST:
        return "edited"
    return "rep-written"


def _words(text: str) -> list[str]:
    return re.findall(r"\w+|[^\w\s]", text.casefold())


def _final(s: Session, row: Draft, final: str, verdict: str, reviewer: str, **details: object) -> None:
    """The draft answered with `final`: its pair for the learning loop, and its row in the audit
    log (`draft_approved`, `draft_edited`, `draft_rep-written`)."""
    row.state, row.final_text, row.reviewed_by, row.reviewed_at = DraftState.SENT, final, reviewer, now()
    s.add(Feedback(draft_id=row.id or 0, conversation_id=row.conversation_id, verdict=verdict, draft_text=row.text,
                   final_text=final, reviewer=reviewer))
    audit.record(s, reviewer, f"draft_{verdict}", conversation_id=row.conversation_id, draft_id=row.id,
                 **{k: v for k, v in details.items() if v is not None})


def _reviewable(s: Session, draft_id: int, *, answered_by: int | None = None) -> Draft:
    """The draft, locked with its conversation, if a rep may still decide it: held or escalated,
    and answering the newest customer turn (or, for a final a rep sent, a turn before it)."""
    row = s.get(Draft, draft_id)
    if row is None:
        raise ReviewError(f"no draft with id {draft_id}")
    db.lock(s, f"conversation:{row.conversation_id}")
    s.refresh(row)
    if row.state not in REVIEWABLE:
        who = f" (reviewed by {row.reviewed_by})" if row.reviewed_by else ""
        raise ReviewError(f"draft {draft_id} is {row.state}{who}: only held or escalated drafts can be reviewed")
    if answered_by is not None:
        if row.message_id >= answered_by:
            raise ReviewError(f"draft {draft_id} answers a message that came after the rep's reply")
        return row
    newest = tickets.newest_turn(s, row.conversation_id)
    if newest is not None and newest != row.message_id:
        raise ReviewError(f"draft {draft_id} answers an older message: message {newest} arrived since "
                          "and gets its own draft")
    return row
