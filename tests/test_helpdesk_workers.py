"""The helpdesk channel with real processes: `mailagent worker` on Redis SIGKILLed between
Zendesk applying an approval reply and our commit (the reply is posted once, found by its marker
after the restart), and `mailagent web` storing signed webhooks that `mailagent run --until-idle`
then carries out (the sweeper finds them)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from sqlmodel import select

from mailagent.actions.backends.demo import seed
from mailagent.config import DATA, load
from mailagent.knowledge.search import sync
from mailagent.store import db, schema
from mailagent.store.models import Draft, DraftState, Feedback, HelpdeskEvent, HelpdeskPost, HelpdeskPostState

from .support import helpdesk_flow as hf
from .support.actions_flow import SAMPLE, policies
from .support.zendesk_server import ZendeskServer
from .test_worker import _log, _mailagent, _wait

REDIS_URL = os.environ.get("MAILAGENT_TEST_REDIS", "redis://127.0.0.1:6379/11")
BILLING = "<p>Why was I charged twice this month? I only have one workspace.</p><p>Jonas</p>"


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in hf.ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


@pytest.fixture
def zd() -> Iterator[ZendeskServer]:
    with ZendeskServer() as server:
        yield server


@pytest.fixture
def redis_cleanup() -> Iterator[None]:
    yield
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(f"mailagent-test-{os.getpid()}-*"):
        client.delete(key)


def _config(tmp_path: Path, zd: ZendeskServer, broker: str, **desk: object) -> tuple[Path, str]:
    """A config file for the processes: Zendesk at the fake server, the shipped policy, the demo
    backend, the bundled knowledge synced into a fresh database."""
    url = f"sqlite:///{tmp_path}/mailagent.db"
    extra = "\n".join(f"{k} = {v!r}" if isinstance(v, str) else f"{k} = {v}" for k, v in desk.items())
    path = tmp_path / "config.toml"
    path.write_text(f"""
[database]
url = "{url}"
[broker]
url = "{broker}"
namespace = "mailagent-test-{os.getpid()}-{tmp_path.name}"
heartbeat_timeout_ms = 3000
maintenance_chance = 1000000
[policy]
directory = "{policies(tmp_path)}"
[agent]
company = "Nimbus Notes"
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
    seed(url, SAMPLE)
    sync(url, DATA / "knowledge")
    return path, url


def _rows(url: str, model: type, *where: object) -> list:  # type: ignore[type-arg]
    with db.reading(url) as s:
        return list(s.exec(select(model).where(*where).order_by(model.id)))  # type: ignore[attr-defined]


def _public_by(zd: ZendeskServer, ticket: int, author: int) -> list[dict[str, object]]:
    return [c for c in zd.comments(ticket) if c["public"] and c["author_id"] == author]


@pytest.mark.slow
def test_a_worker_sigkilled_during_an_approval_post_leaves_one_public_reply(
        tmp_path: Path, zd: ZendeskServer, redis_cleanup: None) -> None:
    config, url = _config(tmp_path, zd, REDIS_URL, timeout_seconds=60, post_lease_seconds=2)
    hooks = hf.Desk.of(load(config))                           # the webhook endpoint, enqueueing on Redis
    jonas = zd.add_user(*hf.JONAS, "end-user")
    ticket = zd.add_ticket("Charged twice", requester=jonas, comments=(BILLING,))
    worker = _mailagent(config, "worker", "--processes", "1", "--threads", "2")
    try:
        hooks.zendesk(ticket, actor=jonas, event="ticket_created")
        assert _wait(lambda: any(not c["public"] for c in zd.comments(ticket)), 90), _log(config)   # the note
        [draft] = _rows(url, Draft)
        assert draft.state == DraftState.HELD
        zd.add_tags(ticket, "mailagent_approve")
        zd.hold_next(on="write")                               # Zendesk applies the reply; its answer is held
        hooks.zendesk(ticket, actor=zd.rep, event="tags_changed")
        assert _wait(lambda: len(_public_by(zd, ticket, zd.rep)) == 1, 90), _log(config)
        os.killpg(worker.pid, signal.SIGKILL)                  # after the API call took effect, before our commit
        worker.wait()
        [reply] = [p for p in _rows(url, HelpdeskPost) if p.kind == "reply"]
        assert reply.state == HelpdeskPostState.POSTING
        zd.release()
        worker = _mailagent(config, "worker", "--processes", "1", "--threads", "2")
        # no new message: the killed worker's unacknowledged one comes back by itself
        assert _wait(lambda: _rows(url, HelpdeskPost, HelpdeskPost.kind == "reply")[0].state == "posted", 90), \
            _log(config)
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=60)
    [reply] = _rows(url, HelpdeskPost, HelpdeskPost.kind == "reply")
    assert reply.replayed is True and reply.attempts == 2
    assert len(_public_by(zd, ticket, zd.rep)) == 1            # 0 doubled posts
    replies = [r for r in zd.requests if r.write and json.loads(r.body)["ticket"].get("comment", {}).get("public")]
    assert len(replies) == 1                                   # one Update Ticket with the reply, ever
    [fb] = _rows(url, Feedback)
    assert (fb.verdict, fb.reviewer) == ("approved", f"zd:{zd.rep}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_run_until_idle_carries_out_webhooks_that_mailagent_web_stored(tmp_path: Path, zd: ZendeskServer) -> None:
    config, url = _config(tmp_path, zd, "memory://")
    port = _free_port()
    web = _mailagent(config, "web", "--port", str(port))
    jonas = zd.add_user(*hf.JONAS, "end-user")
    tickets = [zd.add_ticket(f"Question {i}", requester=jonas, comments=(BILLING,)) for i in range(3)]
    try:
        assert _wait(lambda: _answers(port), 30), _log(config)
        for ticket in tickets:
            body = ZendeskServer.webhook_body(ticket, event="ticket_created", current_user=jonas)
            answer = httpx.post(f"http://127.0.0.1:{port}/hooks/zendesk/zd", content=body,
                                headers=ZendeskServer.webhook_headers(hf.SECRET, body))
            assert answer.status_code == 200 and answer.json()["duplicate"] is False
        forged = httpx.post(f"http://127.0.0.1:{port}/hooks/zendesk/zd", content=body,
                            headers=ZendeskServer.webhook_headers("guessed", body))
        assert forged.status_code == 401
    finally:
        web.send_signal(signal.SIGTERM)
        web.wait(timeout=30)
    assert [e.state for e in _rows(url, HelpdeskEvent)] == ["received"] * 3
    assert zd.requests == []                                   # the web process never calls the helpdesk
    run = subprocess.run([sys.executable, "-m", "mailagent", "--config", str(config), "run", "--until-idle"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert [e.state for e in _rows(url, HelpdeskEvent)] == ["accepted"] * 3
    for ticket in tickets:
        notes = [c for c in zd.comments(ticket) if not c["public"]]
        assert len(notes) == 1 and "held for review" in str(notes[0]["html_body"])
        assert zd.tags(ticket) == ["mailagent_draft"]


def _answers(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        time.sleep(0.1)
        return False
