"""The helpdesk channel's rows: webhook deliveries stored once each, tickets as conversations, and
the ledger of posts (what we posted to a ticket, what it will remove, the comment ids it got)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlmodel import Session, col, select

from mailagent.store import db
from mailagent.store.models import (
    Conversation,
    HelpdeskEvent,
    HelpdeskPost,
    HelpdeskPostState,
    Message,
)


def add_delivery(s: Session, **values: Any) -> tuple[int, bool]:
    """`(row id, new)`: the delivery stored, or the row with its `dedup_key` that it repeats (its
    `deliveries` counted up)."""
    inserted = s.execute(db.insert(s, HelpdeskEvent).values(**values)
                         .on_conflict_do_nothing(index_elements=["dedup_key"]).returning(HelpdeskEvent.id)).scalar()
    if inserted is not None:
        return int(inserted), True
    key = values["dedup_key"]
    s.execute(update(HelpdeskEvent).where(HelpdeskEvent.dedup_key == key)
              .values(deliveries=HelpdeskEvent.deliveries + 1))
    return int(s.exec(select(HelpdeskEvent.id).where(HelpdeskEvent.dedup_key == key)).one()), False


def conversation_of(s: Session, helpdesk: str, ticket_id: str) -> Conversation | None:
    return s.exec(select(Conversation).where(Conversation.helpdesk == helpdesk,
                                             Conversation.ticket_id == ticket_id)).first()


def stored_keys(s: Session, conversation_id: int) -> list[str]:
    """The dedup keys of a conversation's messages (`helpdesk:ticket:comment`): comments stored."""
    return list(s.exec(select(Message.dedup_key).where(Message.conversation_id == conversation_id)))


def posts_to(s: Session, helpdesk: str, ticket_id: str) -> list[HelpdeskPost]:
    return list(s.exec(select(HelpdeskPost).where(HelpdeskPost.helpdesk == helpdesk,
                                                  HelpdeskPost.ticket_id == ticket_id)))


def tags_being_removed(s: Session, helpdesk: str, ticket_id: str) -> set[str]:
    """Tags a post of ours not posted yet will remove: decisions already taken."""
    rows = s.exec(select(HelpdeskPost.remove_tags).where(
        HelpdeskPost.helpdesk == helpdesk, HelpdeskPost.ticket_id == ticket_id,
        col(HelpdeskPost.state).in_([HelpdeskPostState.QUEUED, HelpdeskPostState.POSTING]))).all()
    return {t for tags in rows for t in tags}


def notes_posted_at(s: Session, draft_id: int) -> list[datetime | None]:
    """When the notes about a draft reached the ticket."""
    return list(s.exec(select(HelpdeskPost.posted_at).where(
        HelpdeskPost.draft_id == draft_id, HelpdeskPost.kind == "note",
        HelpdeskPost.state == HelpdeskPostState.POSTED)))


def comment_ids(s: Session, draft_id: int) -> set[str]:
    """The helpdesk's ids of the comments our posts about a draft became."""
    return {c for c in s.exec(select(HelpdeskPost.comment_id).where(HelpdeskPost.draft_id == draft_id)) if c}


def queued_posts(s: Session, draft_id: int) -> list[int]:
    return [int(i) for i in s.exec(select(HelpdeskPost.id).where(
        HelpdeskPost.draft_id == draft_id, HelpdeskPost.state == HelpdeskPostState.QUEUED)) if i is not None]
