"""The loop guard: which events and comments are ours or internal, and never start a reply.

Zendesk's own pattern is a trigger condition `Current user is not <bot>`; we check the same facts
again on our side, because a trigger is configuration someone can get wrong. Pure functions of
the event, the ticket and the settings."""

from __future__ import annotations

from mailagent.config import Helpdesk as HelpdeskSettings
from mailagent.helpdesks.base import EventKind, Ticket, Turn, WebhookEvent

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


def is_internal(turn: Turn) -> bool:
    """Seen by the team only: notes and unsent drafts."""
    return not turn.public or turn.draft


def ticket_problem(asked: str, ticket: Ticket, settings: HelpdeskSettings) -> str | None:
    """What is wrong with the API's answer about ticket `asked`, or None. An answer is a claim
    too: it must be the ticket we asked for, in our mailbox, with each turn once."""
    if ticket.id != asked:
        return f"asked for ticket {asked}, the API answered with ticket {ticket.id}"
    if settings.mailbox_id is not None and ticket.scope is not None and ticket.scope != str(settings.mailbox_id):
        return f"ticket {asked} is in mailbox {ticket.scope}, not {settings.mailbox_id}"
    ids = [t.id for t in ticket.turns]
    if len(set(ids)) != len(ids):
        return f"ticket {asked}: the API listed a comment twice"
    return None
