"""A helpdesk ticket as the conversation the agent reads: the public turns, in order, each with
who wrote it. Internal notes and unsent drafts are team talk, never conversation history; text
hidden by a comment's markup stays apart (as in mail), so it never reads as the customer's words."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from mailagent.helpdesks.base import Role, Ticket
from mailagent.helpdesks.guard import is_internal


@dataclass(frozen=True)
class ConversationTurn:
    comment_id: str
    role: Role                 # customer | agent (a rep) | us
    text: str
    hidden: str
    at: datetime


def conversation_turns(ticket: Ticket) -> list[ConversationTurn]:
    return [ConversationTurn(comment_id=t.id, role=t.role, text=t.text, hidden=t.hidden, at=t.created_at)
            for t in ticket.turns if not is_internal(t) and (t.text.strip() or t.hidden.strip())]


def rep_replies_since(ticket: Ticket, comment_id: str | None) -> list[ConversationTurn]:
    """Public replies by reps after `comment_id` (all of them when None): a takeover, or the final
    a rep sent instead of (or from) our draft."""
    turns = conversation_turns(ticket)
    start = 0
    if comment_id is not None:
        ids = [t.comment_id for t in turns]
        start = ids.index(comment_id) + 1 if comment_id in ids else 0
    return [t for t in turns[start:] if t.role is Role.AGENT]
