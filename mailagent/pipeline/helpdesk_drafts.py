"""A helpdesk ticket's draft, decided: what goes to the helpdesk, in the decision's transaction.

Sent: the reply, as a public reply in the post ledger. Held, escalated, or paused on actions
that wait for a rep: an internal note with the reply, why it was held, the articles it cites and
the proposed actions with their amounts and their tags (Zendesk: the note and tag
`mailagent_draft`; Help Scout: a draft reply the rep sends or edits, and a note explaining it).
Everything is queued in the ledger, so each post reaches the helpdesk once."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from decimal import Decimal

from mailagent.config import Helpdesk as HelpdeskSettings
from mailagent.config import Settings
from mailagent.helpdesks.notes import HeldDraft, ProposedAction, held_note_html, reply_html
from mailagent.pipeline import helpdesk, outbox
from mailagent.store import proposals
from mailagent.store.db import Session
from mailagent.store.models import Action, ActionState, Conversation, Draft, DraftState
from mailagent.store.tickets import Ticket

log = logging.getLogger(__name__)

STATUS = {DraftState.HELD: "held for review", DraftState.ESCALATED: "escalated to a person",
          DraftState.WAITING: "proposes actions that wait for a rep"}
TARGETS = (("order_id", "order"), ("subscription_id", "subscription"), ("invoice_id", "invoice"))


def decided(s: Session, settings: Settings, row: Draft, ticket: Ticket) -> None:
    """The posts for a decided draft: its reply (sent) or a note for a rep (held, escalated)."""
    desk = _desk(settings, ticket)
    if desk is None:
        return
    if row.state == DraftState.SENT:
        conversation = s.get(Conversation, ticket.conversation_id)
        assert conversation is not None
        parent = outbox.Parent(ticket.message_id, None, (), ticket.subject, ticket.from_addr, ticket.reply_to)
        outbox.queue(s, settings, conversation, parent, row.text, approved_by=None, draft_id=row.id)
    elif row.state in (DraftState.HELD, DraftState.ESCALATED):
        actions = proposals.of_draft(s, row.id or 0)
        _note(s, desk, ticket, row, actions, reply_as_draft=desk.kind == "helpscout" and bool(row.text.strip()))


def waiting(s: Session, settings: Settings, row: Draft, ticket: Ticket, actions: Sequence[Action]) -> None:
    """The note for a draft paused on actions that wait for a rep (approved there by tag)."""
    desk = _desk(settings, ticket)
    if desk is not None:
        _note(s, desk, ticket, row, actions, reply_as_draft=False)


def answered(s: Session, settings: Settings, draft: Draft, helpdesk_name: str, ticket_id: str) -> int:
    """A rep sent the final of a draft in the helpdesk: the draft tag goes (nothing else to post)."""
    post = helpdesk.queue_post(s, helpdesk_name, ticket_id, "tags", "",
                               remove_tags=(settings.helpdesk(helpdesk_name).tags.draft,), draft_id=draft.id,
                               conversation_id=draft.conversation_id)
    return post.id or 0


def _desk(settings: Settings, ticket: Ticket) -> HelpdeskSettings | None:
    desk = settings.helpdesks.get(ticket.helpdesk or "")
    if desk is None:
        log.error("draft %s: ticket %s of [helpdesks.%s], which is not in the config: nothing posted",
                  ticket.draft_id, ticket.ticket_ref, ticket.helpdesk)
    return desk


def _note(s: Session, desk: HelpdeskSettings, ticket: Ticket, row: Draft, actions: Sequence[Action], *,
          reply_as_draft: bool) -> None:
    assert ticket.helpdesk is not None and ticket.ticket_ref is not None
    reasons = [*row.reasons, *([row.needs_human_reason] if row.needs_human_reason else [])]
    if ticket.taken_by:
        reasons.append(f"{ticket.taken_by} has this conversation: the agent only suggests")
    held = HeldDraft(draft_id=row.id or 0, reply=row.text, reasons=tuple(dict.fromkeys(reasons)),
                     cited=tuple(row.cited), actions=tuple(_proposed(a) for a in actions),
                     confidence=row.confidence if row.text.strip() else None,
                     status=STATUS.get(row.state, str(row.state)))
    common = {"draft_id": row.id, "conversation_id": ticket.conversation_id}
    if reply_as_draft:
        helpdesk.queue_post(s, ticket.helpdesk, ticket.ticket_ref, "draft", reply_html(row.text), **common)
    helpdesk.queue_post(s, ticket.helpdesk, ticket.ticket_ref, "note",
                        held_note_html(held, desk.tags, with_reply=not reply_as_draft), tags=(desk.tags.draft,),
                        **common)


def _proposed(action: Action) -> ProposedAction:
    target = next((f"{word} {action.arguments[key]}" for key, word in TARGETS if action.arguments.get(key)), "")
    state = "" if action.state == ActionState.PROPOSED else f" ({action.state})"
    amount = Decimal(str(action.amount)) if action.amount is not None else None
    return ProposedAction(action.tool, f"{target}{state}".strip(), amount, action.currency,
                          id=action.id if action.state == ActionState.PROPOSED else None)
