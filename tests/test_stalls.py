"""Nothing stalls the pipeline: mail that names none of our mailboxes, steps that keep failing and
hostile structure all end in a visible state after bounded attempts, and `run --until-idle`
returns."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import dramatiq
import pytest
from sqlmodel import select

from mailagent.config import ConfigError, load
from mailagent.pipeline import classify, decide, sweeper
from mailagent.pipeline.ingest import Inbound, store_many
from mailagent.review import ReviewError, drafts
from mailagent.store import db
from mailagent.store.models import Draft, DraftState, Message, MessageState, Outbound
from mailagent.worker import broker

from .conftest import make_settings
from .support.flow import SEND_EVERYTHING, fresh_queues, policy_dir, synced
from .support.hostile_mail import nested_multipart
from .support.mails import mail
from .support.smtpd import SilentServer, SmtpServer

QUESTION = {"subject": "Password reset email never arrives",
            "body": "I clicked 'forgot password' but the reset email never arrives. How do I reset my password?"}
BCC = mail(1, to="undisclosed-recipients:;", **QUESTION)       # reached us by Bcc: To names nobody of ours


def _settings(url: str, tmp_path: Path, smtp: SmtpServer, **sections):
    settings = make_settings(url, smtp={"port": smtp.port}, agent={"allowed_link_domains": ["nimbusnotes.example"]},
                             policy={"directory": policy_dir(tmp_path, SEND_EVERYTHING), "reload_seconds": 0},
                             **sections)
    return synced(settings)


def _two_mailboxes(settings, **ingest):
    sales = {"address": "sales@example.com", "smtp": settings.mailboxes["support"].smtp}
    data = settings.model_dump()
    data["mailboxes"]["sales"] = sales
    data["ingest"].update(ingest)
    from mailagent import config

    return config.use(type(settings).model_validate(data))


@pytest.fixture
def in_process(monkeypatch: pytest.MonkeyPatch):
    """`InProcess(settings)`, its broker kept inside this test."""
    monkeypatch.setattr(broker, "_installed", broker._installed)
    monkeypatch.setattr(dramatiq.broker, "global_broker", dramatiq.broker.global_broker)
    from mailagent.worker.inprocess import InProcess

    yield InProcess
    fresh_queues()


def _run(in_process, settings, *raws: bytes) -> None:
    store_many(settings.database.url, [Inbound(raw, "file", None) for raw in raws])
    with in_process(settings) as app:
        app.until_idle()


def _rows(url: str, model):
    with db.reading(url) as s:
        return list(s.exec(select(model).order_by(model.id)))


def test_bcc_mail_with_one_mailbox_is_answered_from_it(sqlite_url: str, tmp_path: Path, smtp_server: SmtpServer,
                                                       in_process) -> None:
    settings = _settings(sqlite_url, tmp_path, smtp_server)
    _run(in_process, settings, BCC)
    [message] = _rows(sqlite_url, Message)
    [draft] = _rows(sqlite_url, Draft)
    assert message.mailbox == "support" and draft.state == DraftState.SENT
    [sent] = smtp_server.received
    assert sent.sender == "support@example.com" and sent.recipients == ["alice@customer.example"]


def test_bcc_mail_with_several_mailboxes_is_held_saying_why(sqlite_url: str, tmp_path: Path,
                                                            smtp_server: SmtpServer, in_process) -> None:
    settings = _two_mailboxes(_settings(sqlite_url, tmp_path, smtp_server))
    _run(in_process, settings, BCC)
    [message] = _rows(sqlite_url, Message)
    [draft] = _rows(sqlite_url, Draft)
    assert message.mailbox is None and message.state == MessageState.PROCESSED
    assert draft.state == DraftState.HELD and draft.rule == decide.NO_WAY_OUT
    assert any("default_mailbox" in r for r in draft.reasons) and not smtp_server.received
    with pytest.raises(ReviewError, match="no mailbox to reply from"):          # a rep is told, nothing queued
        drafts.approve(settings, draft.id, "rep@example.com")
    assert _rows(sqlite_url, Outbound) == []


def test_bcc_mail_goes_to_the_default_mailbox_when_one_is_set(sqlite_url: str, tmp_path: Path,
                                                              smtp_server: SmtpServer, in_process) -> None:
    settings = _two_mailboxes(_settings(sqlite_url, tmp_path, smtp_server), default_mailbox="sales")
    _run(in_process, settings, BCC, mail(2, to="support@example.com", **QUESTION))
    assert [m.mailbox for m in _rows(sqlite_url, Message)] == ["sales", "support"]
    assert sorted(r.sender for r in smtp_server.received) == ["sales@example.com", "support@example.com"]


def test_a_default_mailbox_that_is_not_configured_stops_startup(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[ingest]\ndefault_mailbox = "sales"\n[mailboxes.support]\naddress = "support@example.com"\n')
    with pytest.raises(ConfigError) as error:
        load(path)
    assert "ingest.default_mailbox" in str(error.value) and ":2" in str(error.value)


def test_a_draft_that_keeps_failing_ends_held_with_its_error(sqlite_url: str, tmp_path: Path,
                                                             smtp_server: SmtpServer, in_process,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _settings(sqlite_url, tmp_path, smtp_server)

    def broken(*_a, **_k):
        raise RuntimeError("the policy engine broke")

    monkeypatch.setattr(decide, "verdict", broken)
    _run(in_process, settings, mail(1, **QUESTION))       # returns: no busy loop
    [draft] = _rows(sqlite_url, Draft)
    assert draft.state == DraftState.HELD and "drafting_failed" in draft.flags
    assert draft.attempts == settings.worker.max_attempts + 1
    assert "RuntimeError: the policy engine broke" in draft.reasons[0] and not smtp_server.received


def test_a_message_whose_processing_keeps_failing_ends_failed(sqlite_url: str, tmp_path: Path,
                                                              smtp_server: SmtpServer, in_process,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _settings(sqlite_url, tmp_path, smtp_server)
    real = classify.inspect

    def inspect(raw: bytes, **kw):
        if b"poison" in raw:
            raise RecursionError("maximum recursion depth exceeded")
        return real(raw, **kw)

    monkeypatch.setattr(classify, "inspect", inspect)
    raw = mail(1, subject="poison")
    _run(in_process, settings, raw, mail(2, **QUESTION))
    poison, fine = _rows(sqlite_url, Message)
    assert poison.state == MessageState.FAILED and poison.attempts == settings.worker.max_attempts + 1
    assert "RecursionError: maximum recursion depth exceeded" in (poison.error or "")
    assert poison.raw == raw and fine.state == MessageState.PROCESSED
    assert [d.message_id for d in _rows(sqlite_url, Draft)] == [fine.id]
    # the next run finds nothing to do with it: a failed message is surfaced, not retried
    assert sweeper.find_due(settings, timedelta(0)).count == 0


def test_deep_nesting_goes_through_the_whole_pipeline(sqlite_url: str, tmp_path: Path, smtp_server: SmtpServer,
                                                      in_process) -> None:
    settings = _settings(sqlite_url, tmp_path, smtp_server)
    raw = nested_multipart(5000)
    _run(in_process, settings, raw)
    [message] = _rows(sqlite_url, Message)
    [draft] = _rows(sqlite_url, Draft)
    assert message.state == MessageState.PROCESSED and message.raw == raw
    assert "MIME parts nested too deeply; the body is kept as raw text" in message.defects
    assert draft.state not in (DraftState.DRAFTING, DraftState.WAITING)


def test_an_empty_file_among_several_does_not_stop_the_others(tmp_path: Path, sqlite_url: str) -> None:
    config_file = tmp_path / "config.toml"
    config_file.write_text(f'[database]\nurl = "{sqlite_url}"\n[mailboxes.support]\naddress = "support@example.com"\n')
    files = []
    for n in range(5):
        path = tmp_path / f"{n}.eml"
        path.write_bytes(b"" if n == 2 else mail(n))
        files.append(str(path))
    proc = subprocess.run([sys.executable, "-m", "mailagent", "--config", str(config_file), "ingest", *files],
                          capture_output=True, timeout=60, check=False)
    assert proc.returncode == 65 and b"2.eml: empty" in proc.stderr and b"stored 4 new" in proc.stderr
    assert len(_rows(sqlite_url, Message)) == 4


# --- a hung SMTP server --------------------------------------------------------------------------

def test_an_smtp_transaction_ends_by_its_deadline_whatever_the_server_does(smtp_server: SmtpServer) -> None:
    from mailagent.config import Smtp
    from mailagent.mail import smtp

    silent = SilentServer()
    try:
        mute = asyncio.run(smtp.send(Smtp(host="127.0.0.1", port=silent.port, security="none"), "a@example.com",
                                     ["b@example.com"], b"Subject: x\r\n\r\nx\r\n", deadline=1))
    finally:
        silent.stop()
    assert mute.status is smtp.Status.RETRY and mute.phase is smtp.Phase.CONNECT and "deadline" in mute.detail
    smtp_server.handler.hold_data = threading.Event()               # takes the data, never answers it
    try:
        held = asyncio.run(smtp.send(Smtp(host="127.0.0.1", port=smtp_server.port, security="none"),
                                     "a@example.com", ["b@example.com"], b"Subject: x\r\n\r\nx\r\n", deadline=1))
    finally:
        smtp_server.handler.hold_data.set()
    assert held.status is smtp.Status.UNKNOWN and held.phase is smtp.Phase.DATA
    assert held.last_reply.startswith("250")                          # RCPT's answer, the last one heard


def test_a_stalled_smtp_server_does_not_take_the_drafting_workers(sqlite_url: str, tmp_path: Path,
                                                                   smtp_server: SmtpServer, in_process) -> None:
    settings = _settings(sqlite_url, tmp_path, smtp_server, worker={"threads": 2}, outbox={"threads": 1})
    smtp_server.handler.hold_data = threading.Event()
    ids = store_many(sqlite_url, [Inbound(mail(n, sender=f"c{n}@customer.example", **QUESTION), "file", "support")
                                  for n in range(6)])
    with in_process(settings) as app:
        for message_id in ids:
            app.actors.process_message.send(message_id)
        deadline = time.monotonic() + 120          # a hang guard, not a timing assertion
        while time.monotonic() < deadline:
            decided = [d for d in _rows(sqlite_url, Draft) if d.state == DraftState.SENT]
            if len(decided) == 6:
                break
            time.sleep(0.2)
        # every draft was decided while the SMTP server held the first reply's data
        assert len(decided) == 6 and smtp_server.handler.stalled == 1 and not smtp_server.received
        smtp_server.handler.hold_data.set()
        app.until_idle()
    assert sorted(r.recipients[0] for r in smtp_server.received) == [f"c{n}@customer.example" for n in range(6)]
    assert {o.state for o in _rows(sqlite_url, Outbound)} == {"sent"}


def test_worker_queues_are_checked_before_dramatiq_starts(tmp_path: Path, sqlite_url: str) -> None:
    config_file = tmp_path / "config.toml"
    config_file.write_text(f'[database]\nurl = "{sqlite_url}"\n[broker]\nurl = "redis://127.0.0.1:6379/8"\n')
    proc = subprocess.run([sys.executable, "-m", "mailagent", "--config", str(config_file), "worker", "--queues",
                           "outbox", "smtp"], capture_output=True, timeout=60, check=False)
    assert proc.returncode == 78 and b"no such queue: smtp" in proc.stderr and b"outbox" in proc.stderr


def test_a_storage_error_does_not_count_against_the_message(sqlite_url: str, tmp_path: Path,
                                                            smtp_server: SmtpServer,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy.exc import OperationalError

    from mailagent.pipeline import threads

    settings = _settings(sqlite_url, tmp_path, smtp_server)
    [message_id] = store_many(sqlite_url, [Inbound(mail(1, **QUESTION), "file", "support")])

    def locked(*_a, **_k):
        raise OperationalError("BEGIN IMMEDIATE", {}, Exception("database is locked"))

    monkeypatch.setattr(threads, "assign", locked)
    for _ in range(settings.worker.max_attempts + 2):
        with pytest.raises(OperationalError):
            classify.process(settings, message_id)
    [message] = _rows(sqlite_url, Message)
    assert message.state == MessageState.STORED and message.attempts == 0 and message.error is None
    monkeypatch.undo()
    assert classify.process(settings, message_id) is not None
