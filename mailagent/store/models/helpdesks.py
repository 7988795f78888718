"""Helpdesk webhooks as received, and every note or reply we post to a helpdesk (a ledger that
makes each post happen once)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, Column, LargeBinary
from sqlmodel import AutoString, Field, SQLModel

from mailagent.store.models.base import now


class HelpdeskEventState(StrEnum):
    RECEIVED = "received"      # verified and stored; a worker has not looked at it yet
    IGNORED = "ignored"        # the loop guard or the event kind says: nothing to do (reason kept)
    ACCEPTED = "accepted"      # handed on to the conversation pipeline
    FAILED = "failed"          # could not be handled (reason kept); shown, never dropped


class HelpdeskEvent(SQLModel, table=True):
    """A verified webhook delivery, stored with its raw body before we answer 200. The dedup key
    comes from the signed bytes, so a retried or replayed delivery finds its row and stops."""

    __tablename__ = "helpdesk_event"
    id: int | None = Field(default=None, primary_key=True)
    helpdesk: str = Field(index=True)               # the [helpdesks.NAME] it came to
    dedup_key: str = Field(unique=True)
    kind: str                                       # helpdesks.base.EventKind
    event_type: str                                 # the helpdesk's own event name
    ticket_id: str = Field(index=True)
    actor_id: str | None = None
    scope: str | None = None                        # Help Scout: the conversation's mailbox
    tags: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    raw: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    headers: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    deliveries: int = 1                             # how often it arrived (retries, replays)
    state: HelpdeskEventState = Field(default=HelpdeskEventState.RECEIVED, index=True, sa_type=AutoString)
    reason: str = ""
    received_at: datetime = Field(default_factory=now, index=True)
    processed_at: datetime | None = None


class HelpdeskPostState(StrEnum):
    QUEUED = "queued"
    POSTING = "posting"        # an attempt is under way (or died): read the ticket back before the next
    POSTED = "posted"
    FAILED = "failed"          # the helpdesk refused it (reason kept)


class HelpdeskPost(SQLModel, table=True):
    """A note, draft reply or public reply to post to a ticket, exactly once. `marker` travels
    with the post (comment metadata or an invisible body marker): after a crash, the ticket is
    read back and a post carrying it counts as done."""

    __tablename__ = "helpdesk_post"
    id: int | None = Field(default=None, primary_key=True)
    helpdesk: str = Field(index=True)
    ticket_id: str = Field(index=True)
    kind: str                                       # note | draft | reply
    html: str
    author_id: str | None = None                    # a rep, for a reply posted under their name
    tags: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    marker: str = Field(unique=True)
    draft_id: int | None = Field(default=None, foreign_key="draft.id", index=True)
    state: HelpdeskPostState = Field(default=HelpdeskPostState.QUEUED, index=True, sa_type=AutoString)
    attempts: int = 0
    comment_id: str | None = None
    replayed: bool = False                          # found already posted when a retry read the ticket back
    last_error: str | None = None
    created_at: datetime = Field(default_factory=now)
    posting_started_at: datetime | None = None
    posted_at: datetime | None = None
