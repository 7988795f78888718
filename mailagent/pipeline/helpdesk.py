"""The helpdesk channel's own state: webhook deliveries stored before we answer, the loop guard
applied by a worker, and the ledger that posts each note or reply to a helpdesk exactly once.

Exactly once towards a helpdesk that has no idempotency key for comments: every post carries a
marker of ours; a post whose attempt ended without a known outcome (an answer lost, a worker
killed between the API call and our commit) is never sent again before the ticket was read back
and the marker looked for."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import or_, update
from sqlmodel import Session, select

from mailagent import helpdesks
from mailagent.config import Settings
from mailagent.helpdesks.base import (
    Helpdesk,
    HelpdeskError,
    OutcomeUnknown,
    Posted,
    WebhookEvent,
)
from mailagent.helpdesks.guard import event_ignored
from mailagent.store import db
from mailagent.store.models import (
    HelpdeskEvent,
    HelpdeskEventState,
    HelpdeskPost,
    HelpdeskPostState,
    now,
)

log = logging.getLogger(__name__)

KEPT_HEADERS = ("x-zendesk-webhook-signature-timestamp", "x-zendesk-webhook-id", "x-zendesk-webhook-invocation-id",
                "x-helpscout-event", "user-agent", "content-type")
POST_KINDS = ("note", "draft", "reply")
RETRY_SECONDS = 30


# --- webhook deliveries -----------------------------------------------------------------------

def store_event(url: str, helpdesk: str, event: WebhookEvent, raw: bytes, headers: Mapping[str, str]) -> tuple[int, bool]:
    """`(row id, new)`: the delivery stored with its raw body, or the row it repeats (its
    `deliveries` counted up). One short transaction; called by the web process before it answers."""
    kept = {k: headers[k][:200] for k in KEPT_HEADERS if k in headers}
    with db.session(url) as s:
        inserted = s.execute(
            db.insert(s, HelpdeskEvent).values(
                helpdesk=helpdesk, dedup_key=event.dedup_key, kind=event.kind.value, event_type=event.name[:200],
                ticket_id=event.ticket_id, actor_id=event.actor_id, scope=event.scope, tags=list(event.tags),
                raw=raw, headers=kept, deliveries=1, state=HelpdeskEventState.RECEIVED.value, reason="",
                received_at=now(),
            ).on_conflict_do_nothing(index_elements=["dedup_key"]).returning(HelpdeskEvent.id)
        ).scalar()
        if inserted is not None:
            return int(inserted), True
        s.execute(update(HelpdeskEvent).where(HelpdeskEvent.dedup_key == event.dedup_key)
                  .values(deliveries=HelpdeskEvent.deliveries + 1))
        found = s.exec(select(HelpdeskEvent.id).where(HelpdeskEvent.dedup_key == event.dedup_key)).one()
        return int(found), False


def process_event(settings: Settings, event_id: int) -> HelpdeskEvent | None:
    """Apply the loop guard to a stored delivery: `ignored` with the reason, or `accepted` and
    returned for the conversation pipeline. None when it was handled before (a redelivery)."""
    with db.session(settings.database.url) as s:
        row = s.get(HelpdeskEvent, event_id, with_for_update=True)
        if row is None or row.state != HelpdeskEventState.RECEIVED:
            return None
        if row.helpdesk not in settings.helpdesks:
            row.state, row.reason = HelpdeskEventState.FAILED, f"no [helpdesks.{row.helpdesk}] in the config any more"
        else:
            reason = event_ignored(as_event(row), settings.helpdesk(row.helpdesk))
            row.state = HelpdeskEventState.IGNORED if reason else HelpdeskEventState.ACCEPTED
            row.reason = reason or ""
        row.processed_at = now()
        if row.state is HelpdeskEventState.IGNORED:
            log.info("%s: event %d (%s, ticket %s) ignored: %s", row.helpdesk, row.id, row.event_type, row.ticket_id,
                     row.reason)
        return row


def as_event(row: HelpdeskEvent) -> WebhookEvent:
    from mailagent.helpdesks.base import EventKind

    return WebhookEvent(kind=EventKind(row.kind), name=row.event_type, ticket_id=row.ticket_id,
                        dedup_key=row.dedup_key, actor_id=row.actor_id, tags=tuple(row.tags), scope=row.scope)


# --- posts, exactly once ------------------------------------------------------------------------

def queue_post(s: Session, helpdesk: str, ticket_id: str, kind: str, html: str, *, author_id: str | None = None,
               tags: tuple[str, ...] = (), draft_id: int | None = None) -> HelpdeskPost:
    """A post in the ledger, in the caller's transaction (with the state change that causes it)."""
    if kind not in POST_KINDS:
        raise ValueError(f"kind must be one of {POST_KINDS}, not {kind!r}")
    row = HelpdeskPost(helpdesk=helpdesk, ticket_id=ticket_id, kind=kind, html=html, author_id=author_id,
                       tags=list(tags), draft_id=draft_id, marker=f"ma.{secrets.token_hex(12)}")
    s.add(row)
    s.flush()
    return row


@dataclass(frozen=True)
class PostOutcome:
    state: HelpdeskPostState
    detail: str
    retry_in: timedelta | None = None      # try again then (the ledger row says what to do)


ClientFactory = Callable[[Settings, str], Helpdesk]


def post(settings: Settings, post_id: int, client: ClientFactory = helpdesks.client) -> PostOutcome:
    """One attempt at a post: claim it, read the ticket back first if an earlier attempt's outcome
    is unknown, then post with our marker and record the helpdesk's comment id."""
    url = settings.database.url
    with db.session(url) as s:
        row = s.get(HelpdeskPost, post_id, with_for_update=True)
        if row is None:
            return PostOutcome(HelpdeskPostState.FAILED, f"no post {post_id}")
        if row.state in (HelpdeskPostState.POSTED, HelpdeskPostState.FAILED):
            return PostOutcome(row.state, "done before")
        desk = settings.helpdesks.get(row.helpdesk)
        if desk is None:
            row.state, row.last_error = HelpdeskPostState.FAILED, f"no [helpdesks.{row.helpdesk}] in the config"
            return PostOutcome(row.state, row.last_error)
        lease = timedelta(seconds=desk.post_lease_seconds)
        unknown = row.state == HelpdeskPostState.POSTING
        if unknown and row.posting_started_at is not None and now() - row.posting_started_at < lease:
            left = lease - (now() - row.posting_started_at)
            return PostOutcome(row.state, "another attempt is under way", retry_in=left + timedelta(seconds=1))
        row.state, row.posting_started_at, row.attempts = HelpdeskPostState.POSTING, now(), row.attempts + 1
        ticket_id, kind, html, marker = row.ticket_id, row.kind, row.html, row.marker
        author, tags, name = row.author_id, tuple(row.tags), row.helpdesk

    api = client(settings, name)
    try:
        if unknown and (found := api.find_marker(ticket_id, marker)) is not None:
            return _posted(url, post_id, Posted(found, replayed=True))
        try:
            if kind == "note":
                done = api.post_note(ticket_id, html, marker=marker, tags=tags)
            else:
                done = api.post_reply(ticket_id, html, marker=marker, author_id=author, draft=kind == "draft", tags=tags)
        except OutcomeUnknown as exc:
            log.warning("%s: post %d to ticket %s: %s; reading the ticket back", name, post_id, ticket_id, exc)
            found = api.find_marker(ticket_id, marker)
            if found is not None:
                return _posted(url, post_id, Posted(found, replayed=True))
            return _again(url, post_id, str(exc))
        return _posted(url, post_id, done)
    except HelpdeskError as exc:
        if exc.retryable:
            return _again(url, post_id, str(exc), keep_unknown=unknown)
        return _failed(url, post_id, str(exc))
    finally:
        api.close()


def _posted(url: str, post_id: int, done: Posted) -> PostOutcome:
    with db.session(url) as s:
        row = s.get(HelpdeskPost, post_id, with_for_update=True)
        assert row is not None
        row.state, row.comment_id, row.replayed, row.posted_at = HelpdeskPostState.POSTED, done.comment_id, done.replayed, now()
        row.last_error = None
    how = "found already posted" if done.replayed else "posted"
    return PostOutcome(HelpdeskPostState.POSTED, f"{how} as comment {done.comment_id}")


def _again(url: str, post_id: int, error: str, *, keep_unknown: bool = False) -> PostOutcome:
    """Not posted (the ticket was read back, or the request never went out): queued again. A post
    whose read-back itself failed stays `posting` with an expired lease, so the next attempt reads
    back first."""
    with db.session(url) as s:
        row = s.get(HelpdeskPost, post_id, with_for_update=True)
        assert row is not None
        row.last_error = error[:1000]
        if keep_unknown:
            row.posting_started_at = None
        else:
            row.state = HelpdeskPostState.QUEUED
    return PostOutcome(HelpdeskPostState.QUEUED, error, retry_in=timedelta(seconds=RETRY_SECONDS))


def _failed(url: str, post_id: int, error: str) -> PostOutcome:
    with db.session(url) as s:
        row = s.get(HelpdeskPost, post_id, with_for_update=True)
        assert row is not None
        row.state, row.last_error = HelpdeskPostState.FAILED, error[:1000]
    log.error("post %d failed: %s", post_id, error)
    return PostOutcome(HelpdeskPostState.FAILED, error)


def due(settings: Settings, stuck_after: timedelta) -> tuple[list[int], list[int]]:
    """`(event ids, post ids)` left behind (a lost broker message, a dead worker), for the sweeper."""
    cutoff = now() - stuck_after
    with db.reading(settings.database.url) as s:
        events = s.exec(select(HelpdeskEvent.id).where(HelpdeskEvent.state == HelpdeskEventState.RECEIVED,
                                                       HelpdeskEvent.received_at < cutoff)).all()
        posts = s.exec(select(HelpdeskPost.id).where(
            or_(HelpdeskPost.state == HelpdeskPostState.QUEUED,
                (HelpdeskPost.state == HelpdeskPostState.POSTING)
                & (or_(HelpdeskPost.posting_started_at.is_(None),  # type: ignore[union-attr]
                       HelpdeskPost.posting_started_at < cutoff))),  # type: ignore[operator]
            HelpdeskPost.created_at < cutoff)).all()
    return [int(i) for i in events if i is not None], [int(i) for i in posts if i is not None]
