"""The sweeper: finds work stuck in a non-final state, so that a lost broker message (a crash
between commit and enqueue, a worker killed mid-step) only ever delays work, never loses it.

Enqueueing twice is harmless (every actor checks the row's state), but a sweep enqueues only what
is not already waiting in the broker (`Due.without`), so a backlog is not enqueued again at every
sweep while it drains; the sweeper only has to make sure nothing waits forever. It also ends the `sending` state of replies whose worker died."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from sqlalchemy import func, or_
from sqlmodel import Session, col, select

from mailagent.config import Settings
from mailagent.pipeline import helpdesk, outbox
from mailagent.store import db
from mailagent.store.models import (
    Action,
    ActionState,
    Draft,
    DraftState,
    Message,
    MessageState,
    Outbound,
    OutboundState,
    now,
)


@dataclass
class Due:
    process: list[int] = field(default_factory=list)
    draft: list[int] = field(default_factory=list)            # conversation ids
    resume: list[int] = field(default_factory=list)           # draft ids whose actions are decided
    deliver: list[int] = field(default_factory=list)
    save_to_sent: list[int] = field(default_factory=list)
    unknown: list[int] = field(default_factory=list)
    helpdesk_events: list[int] = field(default_factory=list)  # webhook deliveries stored, not handled yet
    helpdesk_posts: list[int] = field(default_factory=list)   # notes and replies not posted yet

    @property
    def count(self) -> int:
        return sum(len(refs) for _, refs in self.work())

    def work(self) -> list[tuple[str, list[int]]]:
        """(actor name, row ids) of everything due."""
        return [(actor, getattr(self, name)) for name, actor in ACTORS.items()]

    def without(self, queued: Collection[tuple[str, int]]) -> Due:
        """What is due and not already waiting in the broker's queues (`(actor, row id)` pairs):
        enqueued once, never again at every sweep while a backlog drains."""
        return replace(self, **{name: [ref for ref in getattr(self, name) if (actor, ref) not in queued]
                                for name, actor in ACTORS.items()})


# Due's fields and the actors that do their work.
ACTORS = {"process": "process_message", "draft": "draft_reply", "resume": "resume_draft", "deliver": "deliver",
          "save_to_sent": "save_to_sent", "helpdesk_events": "helpdesk_event", "helpdesk_posts": "helpdesk_post"}


def find_due(settings: Settings, stuck_after: timedelta) -> Due:
    """Rows to enqueue again; `stuck_after` spares work that was enqueued moments ago."""
    before = now() - stuck_after
    sent_folders = [name for name, m in settings.mailboxes.items() if m.imap and m.imap.sent_folder]
    with db.session(settings.database.url) as s:
        due = Due(unknown=outbox.mark_stale_sending(s, settings))
        due.process = list(s.exec(select(Message.id).where(
            Message.state == MessageState.STORED, Message.received_at <= before)))
        due.draft = _undrafted(s, before)
        due.resume = _resumable(s)
        due.deliver = list(s.exec(select(Outbound.id).where(
            Outbound.state == OutboundState.QUEUED, Outbound.next_attempt_at <= now())))
        due.save_to_sent = list(s.exec(select(Outbound.id).where(
            Outbound.state == OutboundState.SENT, col(Outbound.saved_to_sent).is_(False),
            col(Outbound.mailbox).in_(sent_folders), Outbound.sent_at <= before)))
    if settings.helpdesks:
        due.helpdesk_events, due.helpdesk_posts = helpdesk.due(settings, stuck_after)
    return due


def _undrafted(s: Session, before: datetime) -> list[int]:
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


def _resumable(s: Session) -> list[int]:
    """Paused drafts none of whose actions still waits for a rep (a resume message got lost, or
    the backend was down)."""
    pending = select(Action.id).where(Action.draft_id == Draft.id, Action.state == ActionState.PROPOSED)
    return list(s.exec(select(Draft.id).where(Draft.state == DraftState.WAITING, ~pending.exists())))
