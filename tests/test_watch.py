"""Supervised IDLE watchers: a broker error (a real Redis taken down) does not kill the watcher
for good, and `/healthz` says when a watcher is failing or its process is gone."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from starlette.testclient import TestClient

from mailagent.store import health
from mailagent.store.models import WatcherHealth, now
from mailagent.web.app import create_app
from mailagent.worker import broker, watch

from .conftest import make_settings
from .support.dovecot import Dovecot, free_port
from .support.mails import mail


class RedisServer:
    """A throwaway redis-server of our own on a free port, to stop and start at will."""

    def __init__(self, directory: Path) -> None:
        self.port, self.directory = free_port(), directory
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.directory)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert _wait(lambda: _pings(self.url), 10), "redis-server did not start"

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


def _pings(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_timeout=0.5).ping())
    except redis.exceptions.ConnectionError:
        return False


def _wait(predicate: Callable[[], object], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return bool(predicate())


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


def _polls_queued(server: RedisServer) -> int:
    return int(redis.Redis.from_url(server.url).llen("mailagent-watch-test:ingest"))


def test_a_broker_outage_does_not_kill_the_idle_watcher_and_healthz_tells(
        dovecot: Dovecot, imap_user: str, sqlite_url: str, redis_server: RedisServer) -> None:
    settings = make_settings(sqlite_url, imap={"port": dovecot.port, "user": imap_user, "idle": True},
                             broker={"url": redis_server.url, "namespace": "mailagent-watch-test"})
    web = TestClient(create_app(settings))
    assert web.get("/healthz").status_code == 503                    # configured, but nobody watches yet

    redis_server.stop()                                              # the broker is down from the start
    stop = threading.Event()
    threads = watch.start(settings, lambda name: broker.send(settings, "poll_mailbox", name), stop,
                          beat_seconds=0.2, max_backoff=0.5)
    try:
        # The resync poll after connecting cannot be enqueued: redis.exceptions.ConnectionError.
        def failing() -> bool:
            answer = web.get("/healthz")
            state = answer.json().get("watchers", {}).get("support", {})
            return answer.status_code == 503 and state.get("state") == "restarting" \
                and "ConnectionError" in (state.get("last_error") or "")
        assert _wait(failing, 10), web.get("/healthz").json()
        assert all(t.is_alive() for t in threads)

        # The broker comes back: the watcher, restarted, enqueues its poll, and mail announced by
        # IDLE is enqueued at once.
        redis_server.start()
        assert _wait(lambda: _polls_queued(redis_server) >= 1, 10)
        assert _wait(lambda: web.get("/healthz").status_code == 200, 10), web.get("/healthz").json()
        body = web.get("/healthz").json()
        assert body["ok"] is True and body["watchers"]["support"]["restarts"] >= 1
        before = _polls_queued(redis_server)
        dovecot.append(imap_user, "INBOX", mail(1))
        assert _wait(lambda: _polls_queued(redis_server) > before, 5)
    finally:
        stop.set()
        for thread in threads:
            thread.join(5)
    assert not any(t.is_alive() for t in threads)
    assert health.read(sqlite_url, ["idle:support"])["idle:support"].state == "stopped"


def test_a_watcher_whose_process_stopped_reporting_is_stale(sqlite_url: str, dovecot: Dovecot, imap_user: str) -> None:
    settings = make_settings(sqlite_url, imap={"port": dovecot.port, "user": imap_user, "idle": True})
    health.report(sqlite_url, [WatcherHealth(name="idle:support", process="gone:1", state="running",
                                             beat_at=now() - watch.STALE_AFTER - timedelta(seconds=1))])
    answer = TestClient(create_app(settings)).get("/healthz")
    assert answer.status_code == 503 and answer.json()["watchers"]["support"]["state"] == "stale"
    health.report(sqlite_url, [WatcherHealth(name="idle:support", process="here:1", state="running")])
    assert TestClient(create_app(settings)).get("/healthz").json()["ok"] is True


def test_supervision_restarts_any_failure_and_stops_cleanly() -> None:
    stop = threading.Event()
    runs: list[int] = []

    def flaky() -> None:
        runs.append(1)
        if len(runs) < 3:
            raise RuntimeError("boom")
        stop.wait()

    supervised = watch.Supervised("flaky", flaky, stop, min_backoff=0.01, max_backoff=0.02).start()
    assert _wait(lambda: len(runs) == 3 and supervised.state == "running", 5)
    assert supervised.restarts == 2 and supervised.last_error == "RuntimeError: boom"
    stop.set()
    supervised.thread.join(5)
    assert supervised.state == "stopped" and not supervised.thread.is_alive()
