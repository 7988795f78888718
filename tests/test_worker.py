"""Real worker processes: dramatiq on Redis, SIGKILL mid-batch, SIGTERM; `mailagent run`."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dramatiq
import pytest
import redis
from dramatiq.brokers.redis import RedisBroker
from sqlalchemy import func
from sqlmodel import select

from mailagent.store import db, schema
from mailagent.store.models import (
    Conversation,
    Message,
    MessageState,
    Outbound,
    OutboundState,
    now,
)
from mailagent.worker.broker import QUEUES

from .support.dovecot import Dovecot
from .support.mails import mail

REDIS_URL = os.environ.get("MAILAGENT_TEST_REDIS", "redis://127.0.0.1:6379/11")


def _config(tmp_path: Path, dovecot: Dovecot, user: str, **extra: str) -> Path:
    namespace = f"mailagent-test-{os.getpid()}-{tmp_path.name}"
    path = tmp_path / "config.toml"
    path.write_text(f"""
[database]
url = "sqlite:///{tmp_path}/mailagent.db"
[broker]
url = "{extra.get('broker', REDIS_URL)}"
namespace = "{namespace}"
heartbeat_timeout_ms = 3000
maintenance_chance = 1000000
[ingest]
batch_size = 5
lease_seconds = 2
[mailboxes.support]
address = "support@example.com"
[mailboxes.support.imap]
host = "127.0.0.1"
port = {dovecot.port}
security = "none"
user = "{user}"
password_env = "MAILAGENT_TEST_IMAP_PASSWORD"
idle = false
poll_interval_seconds = {extra.get('poll_interval', '3600')}
""")
    return path


def _mailagent(config: Path, *args: str, **kw) -> subprocess.Popen[bytes]:
    """The process logs to a file next to the config (a pipe nobody drains would fill and stall it)."""
    log = (config.parent / "process.log").open("ab")
    return subprocess.Popen([sys.executable, "-m", "mailagent", "--config", str(config), *args],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True, **kw)


def _log(config: Path) -> str:
    return (config.parent / "process.log").read_text(errors="replace")[-4000:]


def _counts(url: str) -> tuple[int, int, int]:
    with db.session(url) as s:
        stored = s.exec(select(func.count()).select_from(Message)).one()
        processed = s.exec(select(func.count()).select_from(Message)
                           .where(Message.state == MessageState.PROCESSED)).one()
        duplicates = s.exec(select(func.coalesce(func.sum(Message.duplicates), 0))).one()
    return stored, processed, duplicates


def _wait(predicate, timeout: float, every: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every)
    return predicate()


@pytest.fixture
def redis_namespace_cleanup() -> Iterator[None]:
    yield
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(f"mailagent-test-{os.getpid()}-*"):
        client.delete(key)


def _send(config_namespace: str, actor: str, *args: object) -> None:
    broker = RedisBroker(url=REDIS_URL, namespace=config_namespace)
    broker.enqueue(dramatiq.Message(queue_name=QUEUES[actor], actor_name=actor, args=args, kwargs={}, options={}))
    broker.close()


def test_a_worker_killed_mid_batch_loses_and_doubles_nothing(tmp_path: Path, dovecot: Dovecot, imap_user: str,
                                                            redis_namespace_cleanup: None) -> None:
    count = 1000
    dovecot.append(imap_user, "INBOX", *(mail(i, body=f"message {i} " + "x" * 2000) for i in range(count)))
    config = _config(tmp_path, dovecot, imap_user)
    config.write_text(config.read_text() + "[clock]\nstuck_after_seconds = 3\n")
    url = f"sqlite:///{tmp_path}/mailagent.db"
    schema.upgrade(url)
    namespace = f"mailagent-test-{os.getpid()}-{tmp_path.name}"
    worker = _mailagent(config, "worker", "--threads", "2")
    _send(namespace, "poll_mailbox", "support")
    assert _wait(lambda: _counts(url)[0] >= 20, 60, every=0.005), _log(config)
    os.killpg(worker.pid, signal.SIGKILL)                        # the whole worker, mid-poll
    worker.wait()
    killed_at = _counts(url)[0]
    assert killed_at < count, "the poll finished before the kill: make it longer"

    worker = _mailagent(config, "worker", "--threads", "2")       # restarted, as a supervisor would
    # No new poll is sent: the killed worker's unacknowledged poll comes back by itself. Messages it
    # had committed but not yet enqueued (killed between the two) are the sweeper's: the clock
    # sends `sweep` every `[clock] sweep_interval_seconds`, here every 2 s.
    sweeps = itertools.count()

    def all_processed() -> bool:
        if next(sweeps) % 20 == 0:
            _send(namespace, "sweep")
        return _counts(url)[:2] == (count, count)

    assert _wait(all_processed, 240), _counts(url)                # a hang guard, not a timing
    stored, processed, duplicates = _counts(url)
    assert (stored, processed, duplicates) == (count, count, 0)
    with db.session(url) as s:
        ids = s.exec(select(Message.message_id)).all()
    assert sorted(ids) == sorted(f"m{i}.alice@customer.example" for i in range(count))

    worker.send_signal(signal.SIGTERM)                           # graceful stop: exit 0
    assert worker.wait(timeout=60) == 0


def test_run_processes_everything_and_stops_cleanly_on_sigterm(tmp_path: Path, dovecot: Dovecot,
                                                               imap_user: str) -> None:
    dovecot.append(imap_user, "INBOX", *(mail(i) for i in range(40)))
    config = _config(tmp_path, dovecot, imap_user, broker="memory://", poll_interval="1")
    url = f"sqlite:///{tmp_path}/mailagent.db"
    run = _mailagent(config, "run")
    assert _wait(lambda: Path(tmp_path / "mailagent.db").exists() and _safe_counts(url)[1] == 40, 60)
    dovecot.append(imap_user, "INBOX", mail(99))
    assert _wait(lambda: _safe_counts(url)[1] == 41, 30)           # the clock polls again
    run.send_signal(signal.SIGTERM)
    assert run.wait(timeout=60) == 0, _log(config)


def test_run_until_idle_exits_when_done(tmp_path: Path, dovecot: Dovecot, imap_user: str) -> None:
    dovecot.append(imap_user, "INBOX", *(mail(i) for i in range(12)))
    config = _config(tmp_path, dovecot, imap_user, broker="memory://")
    run = _mailagent(config, "run", "--until-idle")
    assert run.wait(timeout=60) == 0, _log(config)
    assert _counts(f"sqlite:///{tmp_path}/mailagent.db") == (12, 12, 0)


def test_run_until_idle_ends_with_the_failures_and_a_nonzero_exit(tmp_path: Path, dovecot: Dovecot,
                                                                  imap_user: str) -> None:
    """A stage that keeps failing (a Sent folder the server refuses to create) made the sweeper
    hand the same work on forever: `--until-idle` never returned. Now it ends, one line each."""
    dovecot.append(imap_user, "INBOX", mail(1))
    config = _config(tmp_path, dovecot, imap_user, broker="memory://")
    config.write_text(config.read_text() + 'sent_folder = "Sent/2026"\n')      # Dovecot separates with "."
    url = f"sqlite:///{tmp_path}/mailagent.db"
    schema.upgrade(url)
    with db.session(url) as s:
        conversation = Conversation(mailbox="support", customer_addr="alice@customer.example", subject="Hi")
        s.add(conversation)
        s.flush()
        s.add(Outbound(conversation_id=conversation.id, mailbox="support", message_id="r1@example.com",
                       sender="support@example.com", recipients=["alice@customer.example"], subject="Re: Hi",
                       body_text="Hello", raw=b"Subject: Re: Hi\r\n\r\nHello\r\n", state=OutboundState.SENT,
                       sent_at=now()))
    db.dispose()
    run = _mailagent(config, "run", "--until-idle")
    assert run.wait(timeout=120) == 1, _log(config)
    failed = [line for line in _log(config).splitlines() if line.startswith("mailagent run: failed: ")]
    assert len(failed) == 1, _log(config)
    assert failed[0].startswith("mailagent run: failed: save_to_sent(1): FolderError: cannot write to the "
                                "sent_folder folder 'Sent/2026': append failed: [CANNOT] Invalid mailbox name")
    assert _counts(url) == (1, 1, 0)                                  # the rest of the work was done


def _safe_counts(url: str) -> tuple[int, int, int]:
    try:
        return _counts(url)
    except Exception:  # noqa: BLE001 - the schema may not exist yet
        return (0, 0, 0)
