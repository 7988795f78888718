"""Rows left in a non-final state past their time, which the sweeper enqueues again: the ids of
messages, conversations, drafts, replies, webhook deliveries and posts whose work may be lost."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, or_
from sqlmodel import Session, col, select

from mailagent.store.models import (
    Action,
    ActionState,
    Draft,
    DraftState,
    HelpdeskEvent,
    HelpdeskEventState,
    HelpdeskPost,
    HelpdeskPostState,
    Message,
    MessageState,
    Outbound,
    OutboundState,
    now,
)


def unprocessed(s: Session, before: datetime) -> list[int]:
    """Messages stored (raw) before `before` and never parsed."""
    return list(s.exec(select(Message.id).where(Message.state == MessageState.STORED, Message.received_at <= before)))


def undrafted(s: Session, before: datetime) -> list[int]:
    """Conversations whose newest turn (as `tickets.newest_turn` picks it: the newest customer
    message, else the newest automated one) has no decided draft: none at all, or one whose
    holder's lease ran out (its worker died mid-draft)."""
    processed = (Message.state == MessageState.PROCESSED, col(Message.conversation_id).is_not(None))
    customer = (select(Message.conversation_id, func.max(Message.id).label("id"))
                .where(*processed, Message.kind == "normal").group_by(Message.conversation_id).subquery())
    any_kind = (select(Message.conversation_id, func.max(Message.id).label("id"))
                .where(*processed).group_by(Message.conversation_id).subquery())
    turn = func.coalesce(customer.c.id, any_kind.c.id)
    live = or_(Draft.state != DraftState.DRAFTING, Draft.lease_until > now())
    open_draft = select(Draft.id).where(Draft.message_id == turn, live)
    rows = s.exec(select(any_kind.c.conversation_id)
                  .outerjoin(customer, customer.c.conversation_id == any_kind.c.conversation_id)
                  .join(Message, Message.id == turn)
                  .where(Message.processed_at <= before, ~open_draft.exists()))
    return list(rows)


def resumable(s: Session) -> list[int]:
    """Paused drafts none of whose actions still waits for a rep (a resume message got lost, or
    the backend was down)."""
    pending = select(Action.id).where(Action.draft_id == Draft.id, Action.state == ActionState.PROPOSED)
    return list(s.exec(select(Draft.id).where(Draft.state == DraftState.WAITING, ~pending.exists())))


def deliverable(s: Session, at: datetime) -> list[int]:
    """Replies queued whose next attempt is due at `at`."""
    return list(s.exec(select(Outbound.id).where(Outbound.state == OutboundState.QUEUED,
                                                 Outbound.next_attempt_at <= at)))


def unsaved(s: Session, mailboxes: Sequence[str], before: datetime) -> list[int]:
    """Replies sent before `before` from these mailboxes (those with a Sent folder) and not yet
    saved there."""
    return list(s.exec(select(Outbound.id).where(
        Outbound.state == OutboundState.SENT, col(Outbound.saved_to_sent).is_(False),
        col(Outbound.mailbox).in_(mailboxes), Outbound.sent_at <= before)))


def helpdesk_events(s: Session, cutoff: datetime, at: datetime) -> list[int]:
    """Webhook deliveries received before `cutoff` and not handled, whose next attempt is due at `at`."""
    rows = s.exec(select(HelpdeskEvent.id).where(
        HelpdeskEvent.state == HelpdeskEventState.RECEIVED, HelpdeskEvent.received_at < cutoff,
        or_(col(HelpdeskEvent.next_attempt_at).is_(None), col(HelpdeskEvent.next_attempt_at) <= at)))
    return [int(i) for i in rows if i is not None]


def helpdesk_posts(s: Session, cutoff: datetime, at: datetime) -> list[int]:
    """Posts created before `cutoff` and not posted: queued, or posting since before `cutoff` (a
    dead worker), whose next attempt is due at `at`."""
    rows = s.exec(select(HelpdeskPost.id).where(
        or_(HelpdeskPost.state == HelpdeskPostState.QUEUED,
            (HelpdeskPost.state == HelpdeskPostState.POSTING)
            & (or_(col(HelpdeskPost.posting_started_at).is_(None), col(HelpdeskPost.posting_started_at) < cutoff))),
        or_(col(HelpdeskPost.next_attempt_at).is_(None), col(HelpdeskPost.next_attempt_at) <= at),
        HelpdeskPost.created_at < cutoff))
    return [int(i) for i in rows if i is not None]
