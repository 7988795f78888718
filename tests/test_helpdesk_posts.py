"""Posting to a helpdesk exactly once: lost answers, 5xx, a worker SIGKILLed between the API call
and its commit, and a 429 storm across two worker processes sharing one budget."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from sqlmodel import select

from mailagent.config import Settings
from mailagent.pipeline import helpdesk
from mailagent.store import db, schema
from mailagent.store.models import HelpdeskPost, HelpdeskPostState, now

from .conftest import make_settings
from .support.zendesk_server import ZendeskServer
from .test_worker import _log, _mailagent, _send, _wait

REDIS_URL = os.environ.get("MAILAGENT_TEST_REDIS", "redis://127.0.0.1:6379/11")


@pytest.fixture(autouse=True)
def _token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_ZD_TOKEN", "zd-token")
    monkeypatch.setenv("TEST_ZD_SECRET", "s")


@pytest.fixture
def zd() -> Iterator[ZendeskServer]:
    with ZendeskServer() as server:
        yield server


def _settings(url: str, zd: ZendeskServer, **extra: object) -> Settings:
    return make_settings(url, helpdesks={"zd": {
        "kind": "zendesk", "base_url": zd.base_url, "email": "bot@acme.test", "api_token_env": "TEST_ZD_TOKEN",
        "bot_user_id": zd.bot, "webhook_secret_env": "TEST_ZD_SECRET", "timeout_seconds": 1, "max_retries": 1,
        **extra}})


def _queue(url: str, ticket: int, html: str = "<p>held draft</p>", kind: str = "note", **kw: object) -> HelpdeskPost:
    with db.session(url) as s:
        return helpdesk.queue_post(s, "zd", str(ticket), kind, html, **kw)  # type: ignore[arg-type]


def _row(url: str, post_id: int) -> HelpdeskPost:
    with db.session(url) as s:
        row = s.get(HelpdeskPost, post_id)
        assert row is not None
        return row


def _with_marker(zd: ZendeskServer, ticket: int, marker: str) -> int:
    with zd.lock:
        return sum(1 for a in zd.tickets[ticket].audits if a["metadata"]["custom"].get("mailagent_marker") == marker)


def test_a_note_is_posted_once_with_its_tags_and_a_second_attempt_does_nothing(sqlite_url: str, zd: ZendeskServer) -> None:
    settings = _settings(sqlite_url, zd)
    ticket = zd.add_ticket("Refund", requester=zd.customer, comments=("<p>refund?</p>",))
    post = _queue(sqlite_url, ticket, tags=("mailagent_draft",))
    assert post.id is not None
    first = helpdesk.post(settings, post.id)
    assert first.state == HelpdeskPostState.POSTED and "posted as comment" in first.detail
    assert helpdesk.post(settings, post.id).detail == "done before"
    row = _row(sqlite_url, post.id)
    assert (row.attempts, row.replayed, row.comment_id) == (1, False, str(zd.comments(ticket)[-1]["id"]))
    assert _with_marker(zd, ticket, post.marker) == 1 and zd.tickets[ticket].tags == ["mailagent_draft"]


def test_a_lost_answer_is_settled_by_reading_the_ticket_back_not_by_posting_again(sqlite_url: str,
                                                                                  zd: ZendeskServer) -> None:
    settings = _settings(sqlite_url, zd)
    ticket = zd.add_ticket("Refund", requester=zd.customer, comments=("<p>refund?</p>",))
    post = _queue(sqlite_url, ticket, kind="reply", html="<p>Done.</p>", author_id=str(zd.rep))
    assert post.id is not None
    zd.hold_next(on="write")                        # applied, answer never arrives (the client times out)
    outcome = helpdesk.post(settings, post.id)
    assert outcome.state == HelpdeskPostState.POSTED and "found already posted" in outcome.detail
    assert _with_marker(zd, ticket, post.marker) == 1
    assert zd.comments(ticket)[-1]["author_id"] == zd.rep and zd.comments(ticket)[-1]["public"] is True
    assert _row(sqlite_url, post.id).replayed is True


def test_a_5xx_on_a_write_is_checked_then_retried_and_posts_once(sqlite_url: str, zd: ZendeskServer) -> None:
    settings = _settings(sqlite_url, zd)
    ticket = zd.add_ticket("Refund", requester=zd.customer, comments=("<p>refund?</p>",))
    post = _queue(sqlite_url, ticket)
    assert post.id is not None
    zd.fail_next(503, on="write")                   # not applied
    outcome = helpdesk.post(settings, post.id)
    assert outcome.state == HelpdeskPostState.QUEUED and outcome.retry_in is not None
    assert _with_marker(zd, ticket, post.marker) == 0
    assert helpdesk.post(settings, post.id).state == HelpdeskPostState.POSTED
    assert _with_marker(zd, ticket, post.marker) == 1 and _row(sqlite_url, post.id).attempts == 2


@pytest.mark.parametrize("applied", [True, False])
def test_an_attempt_that_died_is_reconciled_after_its_lease(sqlite_url: str, zd: ZendeskServer, applied: bool) -> None:
    """A worker died in `posting`: if the helpdesk has the comment, it is recorded, not posted again;
    if not, it is posted now. Within the lease, nobody touches it."""
    settings = _settings(sqlite_url, zd, post_lease_seconds=30)
    ticket = zd.add_ticket("Refund", requester=zd.customer, comments=("<p>refund?</p>",))
    post = _queue(sqlite_url, ticket)
    assert post.id is not None
    with db.session(sqlite_url) as s:
        row = s.get(HelpdeskPost, post.id)
        assert row is not None
        row.state, row.posting_started_at, row.attempts = HelpdeskPostState.POSTING, now(), 1
    if applied:
        from mailagent import helpdesks

        api = helpdesks.client(settings, "zd")
        api.post_note(str(ticket), post.html, marker=post.marker)
        api.close()
    busy = helpdesk.post(settings, post.id)
    assert busy.detail == "another attempt is under way" and busy.retry_in is not None
    with db.session(sqlite_url) as s:
        row = s.get(HelpdeskPost, post.id)
        assert row is not None
        row.posting_started_at = now() - timedelta(seconds=31)
    outcome = helpdesk.post(settings, post.id)
    assert outcome.state == HelpdeskPostState.POSTED
    assert _row(sqlite_url, post.id).replayed is applied
    assert _with_marker(zd, ticket, post.marker) == 1
    assert helpdesk.due(settings, timedelta(0)) == ([], [])


def test_a_refused_post_fails_with_the_reason(sqlite_url: str, zd: ZendeskServer) -> None:
    settings = _settings(sqlite_url, zd)
    post = _queue(sqlite_url, 999999)
    assert post.id is not None
    outcome = helpdesk.post(settings, post.id)
    assert outcome.state == HelpdeskPostState.FAILED and "not found" in outcome.detail
    assert "not found" in (_row(sqlite_url, post.id).last_error or "")


# --- real worker processes --------------------------------------------------------------------------

def _config(tmp_path: Path, zd: ZendeskServer, **desk: object) -> tuple[Path, str, str]:
    namespace = f"mailagent-test-{os.getpid()}-{tmp_path.name}"
    url = f"sqlite:///{tmp_path}/mailagent.db"
    extra = "\n".join(f"{k} = {v!r}" if isinstance(v, str) else f"{k} = {v}" for k, v in desk.items())
    path = tmp_path / "config.toml"
    path.write_text(f"""
[database]
url = "{url}"
[broker]
url = "{REDIS_URL}"
namespace = "{namespace}"
heartbeat_timeout_ms = 3000
maintenance_chance = 1000000
[helpdesks.zd]
kind = "zendesk"
base_url = "{zd.base_url}"
email = "bot@acme.test"
api_token_env = "TEST_ZD_TOKEN"
bot_user_id = {zd.bot}
webhook_secret_env = "TEST_ZD_SECRET"
{extra}
""")
    schema.upgrade(url)
    return path, url, namespace


@pytest.fixture
def redis_cleanup() -> Iterator[None]:
    yield
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(f"mailagent-test-{os.getpid()}-*"):
        client.delete(key)


def _states(url: str) -> list[str]:
    with db.session(url) as s:
        return [str(r) for r in s.exec(select(HelpdeskPost.state).order_by(HelpdeskPost.id)).all()]


@pytest.mark.slow
def test_a_worker_sigkilled_between_the_api_call_and_its_commit_does_not_post_twice(
        tmp_path: Path, zd: ZendeskServer, redis_cleanup: None) -> None:
    config, url, namespace = _config(tmp_path, zd, timeout_seconds=60, post_lease_seconds=2)
    ticket = zd.add_ticket("Refund", requester=zd.customer, comments=("<p>refund?</p>",))
    post = _queue(url, ticket)
    assert post.id is not None
    zd.hold_next(on="write")                        # the comment is applied, the answer is held
    worker = _mailagent(config, "worker", "--processes", "1", "--threads", "1")
    try:
        _send(namespace, "helpdesk_post", post.id)
        assert _wait(lambda: any(r.write and r.applied for r in zd.requests), 60), _log(config)
        os.killpg(worker.pid, signal.SIGKILL)       # after the API call took effect, before our commit
        worker.wait()
        assert _states(url) == ["posting"] and _with_marker(zd, ticket, post.marker) == 1
        zd.release()
        worker = _mailagent(config, "worker", "--processes", "1", "--threads", "1")
        # no new message: the killed worker's unacknowledged one comes back by itself
        assert _wait(lambda: _states(url) == ["posted"], 90), _log(config)
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=60)
    row = _row(url, post.id)
    assert row.replayed is True and row.attempts == 2
    assert _with_marker(zd, ticket, post.marker) == 1          # 0 doubled posts
    assert len([r for r in zd.requests if r.write]) == 1


@pytest.mark.slow
def test_a_429_storm_across_two_worker_processes_stays_within_the_shared_budget(
        tmp_path: Path, zd: ZendeskServer, redis_cleanup: None) -> None:
    budget, window = 8, 4.0
    config, url, namespace = _config(tmp_path, zd, updates_per_minute=budget, budget_window_seconds=window,
                                     timeout_seconds=10)
    zd.rate_limit(budget, window, on="write")       # the server's own limit: a client over it gets 429s
    zd.fail_next(429, times=8, on="write", headers={"Retry-After": "1"})   # and a storm besides
    tickets = [zd.add_ticket(f"T{i}", requester=zd.customer, comments=("<p>hi</p>",)) for i in range(5)]
    posts = [_queue(url, tickets[i % 5], html=f"<p>note {i}</p>") for i in range(32)]
    workers = [_mailagent(config, "worker", "--processes", "1", "--threads", "4") for _ in range(2)]
    started = time.monotonic()
    try:
        for post in posts:
            _send(namespace, "helpdesk_post", post.id)
        assert _wait(lambda: _states(url) == ["posted"] * 32, 120), (_states(url), _log(config))
    finally:
        for worker in workers:
            os.killpg(worker.pid, signal.SIGTERM)
        for worker in workers:
            worker.wait(timeout=60)
    elapsed = time.monotonic() - started
    writes = [r for r in zd.requests if r.write]
    busiest = zd.max_in_window(window, on="write")
    print(f"429 storm: {len(writes)} writes ({sum(r.status == 429 for r in writes)} answered 429) in {elapsed:.1f} s; "
          f"busiest {window:.0f} s window: {busiest} of a budget of {budget}")
    assert busiest <= budget
    assert sum(r.status == 429 for r in writes) == 8          # only the injected storm: the limit was never hit
    assert all(_with_marker(zd, tickets[i % 5], p.marker) == 1 for i, p in enumerate(posts))
    assert {int(r.path.split("/")[-1].split(".")[0]) for r in writes} == set(tickets)
