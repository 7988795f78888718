"""The loop guard: which events and comments are ours or internal, and never start a reply.

Zendesk's own pattern is a trigger condition `Current user is not <bot>`; we check the same facts
again on our side, because a trigger is configuration someone can get wrong. Pure functions of
the event, the ticket and the settings."""

from __future__ import annotations

from mailagent.config import Helpdesk as HelpdeskSettings
from mailagent.helpdesks.base import EventKind, Role, Ticket, Turn, WebhookEvent

ACTIONABLE = frozenset({EventKind.TICKET_CREATED, EventKind.CUSTOMER_REPLIED, EventKind.AGENT_REPLIED,
                        EventKind.TAGS_CHANGED, EventKind.TICKET_UPDATED})


def event_ignored(event: WebhookEvent, settings: HelpdeskSettings) -> str | None:
    """Why this event must not be acted on, or None. Tag events by our own user are ignored too:
    only a rep's tag is a rep's decision."""
    if event.actor_id is not None and event.actor_id == str(settings.bot_user_id):
        return f"caused by our own API user {settings.bot_user_id}"
    if event.kind is EventKind.NOTE_ADDED:
        return "an internal note"
    if event.kind not in ACTIONABLE:
        return f"event {event.name!r} is not one we act on"
    if settings.mailbox_id is not None and event.scope is not None and event.scope != str(settings.mailbox_id):
        return f"conversation of mailbox {event.scope}, not {settings.mailbox_id}"
    return None


def is_ours(turn: Turn) -> bool:
    """Written by our API user: our notes, drafts and auto-sent replies."""
    return turn.role is Role.US


def is_internal(turn: Turn) -> bool:
    """Seen by the team only: notes and unsent drafts."""
    return not turn.public or turn.draft


def awaiting_reply(ticket: Ticket) -> Turn | None:
    """The customer turn a draft would answer: the newest public turn, when a customer wrote it.
    None when the newest public turn is ours or a rep's (nothing to answer: we never answer
    ourselves, and a rep's reply means the rep has it)."""
    public = [t for t in ticket.turns if not is_internal(t)]
    if not public or public[-1].role is not Role.CUSTOMER:
        return None
    return public[-1]
