"""Takeover: a rep takes a conversation and the agent stops auto-sending and auto-approving
there until the rep hands it back (DESIGN invariant 5)."""

from __future__ import annotations

from mailagent.config import Settings
from mailagent.review import ReviewError
from mailagent.store import audit, db
from mailagent.store.db import Session
from mailagent.store.models import Conversation


def take(settings: Settings, conversation_id: int, rep: str) -> Conversation:
    """A rep takes the conversation: no auto-send and no auto-approval there until released."""
    with db.session(settings.database.url) as s:
        return take_in(s, conversation_id, rep)


def take_in(s: Session, conversation_id: int, rep: str) -> Conversation:
    conversation = s.get(Conversation, conversation_id, with_for_update=True)
    if conversation is None:
        raise ReviewError(f"no conversation with id {conversation_id}")
    if conversation.taken_by and conversation.taken_by != rep:
        raise ReviewError(f"conversation {conversation_id} is already taken by {conversation.taken_by}")
    if conversation.taken_by != rep:
        conversation.taken_by = rep
        audit.record(s, rep, "taken", conversation_id=conversation_id)
    return conversation


def release(settings: Settings, conversation_id: int, rep: str) -> Conversation:
    """Hand the conversation back to the agent."""
    with db.session(settings.database.url) as s:
        return release_in(s, conversation_id, rep)


def release_in(s: Session, conversation_id: int, rep: str) -> Conversation:
    conversation = s.get(Conversation, conversation_id, with_for_update=True)
    if conversation is None:
        raise ReviewError(f"no conversation with id {conversation_id}")
    if conversation.taken_by is None:
        raise ReviewError(f"conversation {conversation_id} is not taken")
    audit.record(s, rep, "released", conversation_id=conversation_id, taken_by=conversation.taken_by)
    conversation.taken_by = None
    return conversation
