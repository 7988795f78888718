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
from mailagent.store import db, sweep
from mailagent.store import helpdesk as stored
from mailagent.store.db import Session
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
POST_KINDS = ("note", "draft", "reply", "tags")    # tags: a tag change alone (repeating it is harmless)
RETRY_SECONDS = 30
MAX_RETRY_SECONDS = 600
MAX_EVENT_ATTEMPTS = 30


# --- webhook deliveries -----------------------------------------------------------------------

def store_event(url: str, helpdesk: str, event: WebhookEvent, raw: bytes, headers: Mapping[str, str]) -> tuple[int, bool]:
    """`(row id, new)`: the delivery stored with its raw body, or the row it repeats (its
    `deliveries` counted up). One short transaction; called by the web process before it answers."""
    kept = {k: headers[k][:200] for k in KEPT_HEADERS if k in headers}
    with db.session(url) as s:
        return stored.add_delivery(
            s, helpdesk=helpdesk, dedup_key=event.dedup_key, kind=event.kind.value, event_type=event.name[:200],
            ticket_id=event.ticket_id, actor_id=event.actor_id, scope=event.scope, tags=list(event.tags), raw=raw,
            headers=kept, deliveries=1, state=HelpdeskEventState.RECEIVED.value, reason="", received_at=now())


def process_event(settings: Settings, event_id: int) -> HelpdeskEvent | None:
    """Apply the loop guard to a stored delivery: `ignored` with the reason, or returned (still
    `received`) to be handled; it becomes `accepted` in the transaction that stores what it
    brought. None when it was handled before (a redelivery) or must wait for its next attempt."""
    with db.session(settings.database.url) as s:
        row = s.get(HelpdeskEvent, event_id, with_for_update=True)
        if row is None or row.state != HelpdeskEventState.RECEIVED:
            return None
        if row.next_attempt_at is not None and row.next_attempt_at > now():
            return None
        if row.helpdesk not in settings.helpdesks:
            row.state, row.reason = HelpdeskEventState.FAILED, f"no [helpdesks.{row.helpdesk}] in the config any more"
        elif reason := event_ignored(as_event(row), settings.helpdesk(row.helpdesk)):
            row.state, row.reason = HelpdeskEventState.IGNORED, reason
            log.info("%s: event %d (%s, ticket %s) ignored: %s", row.helpdesk, row.id, row.event_type, row.ticket_id,
                     row.reason)
        else:
            return row
        row.processed_at = now()
        return None


def finish_event(row: HelpdeskEvent, summary: str) -> None:
    """The event was handled (in the caller's transaction, with what it brought)."""
    row.state, row.reason, row.processed_at, row.next_attempt_at = HelpdeskEventState.ACCEPTED, summary[:1000], now(), None


def retry_event(url: str, event_id: int, error: str, *, max_attempts: int = MAX_EVENT_ATTEMPTS,
                wait: timedelta | None = None) -> timedelta | None:
    """A handling attempt failed for a reason that may pass (the API is down): try again later,
    or give up (`failed`, shown) after `max_attempts`. With `wait`, the reason passes by itself
    (a post of ours in flight settles within its lease): again after `wait`, not counted."""
    with db.session(url) as s:
        row = s.get(HelpdeskEvent, event_id, with_for_update=True)
        if row is None or row.state != HelpdeskEventState.RECEIVED:
            return None
        row.reason = error[:1000]
        if wait is not None:
            row.next_attempt_at = now() + wait
            return wait
        row.attempts += 1
        if row.attempts >= max_attempts:
            row.state, row.processed_at = HelpdeskEventState.FAILED, now()
            row.reason = f"gave up after {row.attempts} attempts: {error}"[:1000]
            log.error("%s: event %d failed: %s", row.helpdesk, event_id, row.reason)
            return None
        delay = timedelta(seconds=min(RETRY_SECONDS * 2 ** (row.attempts - 1), MAX_RETRY_SECONDS))
        row.next_attempt_at = now() + delay
        log.warning("%s: event %d (ticket %s), attempt %d: %s; again in %s", row.helpdesk, event_id, row.ticket_id,
                    row.attempts, error, delay)
        return delay


def fail_event(url: str, event_id: int, error: str) -> None:
    """The event cannot be handled (the helpdesk refused, or answered about another ticket)."""
    with db.session(url) as s:
        row = s.get(HelpdeskEvent, event_id, with_for_update=True)
        if row is not None and row.state == HelpdeskEventState.RECEIVED:
            row.state, row.reason, row.processed_at = HelpdeskEventState.FAILED, error[:1000], now()
    log.error("helpdesk event %d failed: %s", event_id, error)


def as_event(row: HelpdeskEvent) -> WebhookEvent:
    from mailagent.helpdesks.base import EventKind

    return WebhookEvent(kind=EventKind(row.kind), name=row.event_type, ticket_id=row.ticket_id,
                        dedup_key=row.dedup_key, actor_id=row.actor_id, tags=tuple(row.tags), scope=row.scope)


# --- posts, exactly once ------------------------------------------------------------------------

def queue_post(s: Session, helpdesk: str, ticket_id: str, kind: str, html: str, *, author_id: str | None = None,
               tags: tuple[str, ...] = (), remove_tags: tuple[str, ...] = (), draft_id: int | None = None,
               conversation_id: int | None = None, approved_by: str | None = None) -> HelpdeskPost:
    """A post in the ledger, in the caller's transaction (with the state change that causes it).
    `approved_by` names the rep who approved a reply; a reply without one was auto-sent."""
    if kind not in POST_KINDS:
        raise ValueError(f"kind must be one of {POST_KINDS}, not {kind!r}")
    row = HelpdeskPost(helpdesk=helpdesk, ticket_id=ticket_id, kind=kind, html=html, author_id=author_id,
                       tags=list(tags), remove_tags=list(remove_tags), draft_id=draft_id,
                       conversation_id=conversation_id, approved_by=approved_by, marker=f"ma.{secrets.token_hex(12)}")
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
        author, tags, name, remove = row.author_id, tuple(row.tags), row.helpdesk, tuple(row.remove_tags)

    api = client(settings, name)
    try:
        if kind == "tags":
            api.change_tags(ticket_id, add=tags, remove=remove)
            return _posted(url, post_id, Posted(""))
        if unknown and (found := api.find_marker(ticket_id, marker)) is not None:
            return _posted(url, post_id, Posted(found, replayed=True))
        try:
            if kind == "note":
                done = api.post_note(ticket_id, html, marker=marker, tags=tags, remove_tags=remove)
            else:
                done = api.post_reply(ticket_id, html, marker=marker, author_id=author, draft=kind == "draft", tags=tags,
                                      remove_tags=remove)
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
        row.next_attempt_at = now() + timedelta(seconds=RETRY_SECONDS)
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
    """`(event ids, post ids)` left behind (a lost broker message, a dead worker), for the sweeper;
    those waiting for a retry only once their time has come."""
    t = now()
    cutoff = t - stuck_after
    with db.reading(settings.database.url) as s:
        return sweep.helpdesk_events(s, cutoff, t), sweep.helpdesk_posts(s, cutoff, t)


def queued_posts(settings: Settings, draft_id: int) -> list[int]:
    """The posts a draft's decision queued, to hand to the workers right away."""
    with db.reading(settings.database.url) as s:
        return stored.queued_posts(s, draft_id)
