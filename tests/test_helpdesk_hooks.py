"""The webhook endpoints of `mailagent web`: verified, stored and enqueued, or refused with
nothing stored and nothing enqueued; replays answered 200 and processed once; the loop guard in
the worker; `mailagent helpdesk check`."""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import redis
from sqlmodel import select
from starlette.testclient import TestClient

from mailagent import config
from mailagent.cli.main import main
from mailagent.pipeline import helpdesk
from mailagent.store import db
from mailagent.store.models import HelpdeskEvent, HelpdeskEventState
from mailagent.web.app import create_app

from .conftest import make_settings
from .support.helpscout_server import HelpScoutServer
from .support.zendesk_server import ZendeskServer

REDIS_URL = os.environ.get("MAILAGENT_TEST_REDIS", "redis://127.0.0.1:6379/11")
SECRET = "whsec-3f9a"
BOT = 1001


@pytest.fixture
def namespace() -> Iterator[str]:
    name = f"mailagent-test-{os.getpid()}-hooks-{uuid.uuid4().hex[:8]}"
    yield name
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(f"{name}*"):
        client.delete(key)


@pytest.fixture
def app(sqlite_url: str, namespace: str, monkeypatch: pytest.MonkeyPatch) -> TestClient:
    monkeypatch.setenv("TEST_ZD_SECRET", SECRET)
    monkeypatch.setenv("TEST_HS_WEBHOOK", SECRET)
    settings = make_settings(sqlite_url, broker={"url": REDIS_URL, "namespace": namespace}, helpdesks={
        "zd": {"kind": "zendesk", "subdomain": "acme", "email": "bot@acme.test", "api_token_env": "TEST_ZD_TOKEN",
               "bot_user_id": BOT, "webhook_secret_env": "TEST_ZD_SECRET", "max_body_bytes": 4096},
        "hs": {"kind": "helpscout", "client_id": "app", "client_secret_env": "TEST_HS_SECRET", "bot_user_id": 11,
               "mailbox_id": 77, "webhook_secret_env": "TEST_HS_WEBHOOK"}})
    return TestClient(create_app(settings))


def _enqueued(namespace: str) -> int:
    return int(redis.Redis.from_url(REDIS_URL).hlen(f"{namespace}:helpdesk.msgs"))


def _events(url: str) -> list[HelpdeskEvent]:
    with db.session(url) as s:
        return list(s.exec(select(HelpdeskEvent).order_by(HelpdeskEvent.id)).all())


def _zd(body: bytes, *, secret: str = SECRET, at: datetime | None = None) -> dict[str, str]:
    stamp = (at or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return ZendeskServer.webhook_headers(secret, body, stamp)


def test_a_signed_zendesk_delivery_is_stored_raw_and_enqueued_once_however_often_it_comes(
        app: TestClient, sqlite_url: str, namespace: str) -> None:
    body = ZendeskServer.webhook_body(42, current_user=2002)
    headers = _zd(body)
    answers = [app.post("/hooks/zendesk/zd", content=body, headers=headers) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert [a.json()["duplicate"] for a in answers] == [False, True, True]
    [row] = _events(sqlite_url)
    assert (row.helpdesk, row.ticket_id, row.actor_id, row.raw, row.deliveries) == ("zd", "42", "2002", body, 3)
    assert row.state == HelpdeskEventState.RECEIVED and row.headers["x-zendesk-webhook-signature-timestamp"]
    assert _enqueued(namespace) == 1


def test_forged_stale_unsigned_oversized_and_malformed_deliveries_store_and_enqueue_nothing(
        app: TestClient, sqlite_url: str, namespace: str, caplog: pytest.LogCaptureFixture) -> None:
    body = ZendeskServer.webhook_body(42, current_user=2002)
    good = _zd(body)
    unsigned = {k: v for k, v in good.items() if "Signature" not in k}
    big = b'{"ticket_id": "42", "pad": "' + b"x" * 5000 + b'"}'
    cases = [
        ("forged", body, _zd(body, secret="guessed"), 401),
        ("tampered", body.replace(b"42", b"43"), good, 401),
        ("stale", body, _zd(body, at=datetime.now(UTC) - timedelta(minutes=6)), 401),
        ("unsigned", body, unsigned, 401),
        ("oversized", big, _zd(big), 413),
        ("not json", b"{nope", _zd(b"{nope"), 400),
        ("no ticket", b'{"event": "ticket_updated"}', _zd(b'{"event": "ticket_updated"}'), 400),
    ]
    caplog.set_level(logging.WARNING, logger="mailagent.web.hooks")
    statuses = {name: app.post("/hooks/zendesk/zd", content=b, headers=h).status_code for name, b, h, _ in cases}
    assert statuses == {name: status for name, _, _, status in cases}
    hs_body = b'{"id": 5, "mailboxId": 77}'
    forged_hs = HelpScoutServer.webhook_headers("guessed", hs_body, "convo.created")
    assert app.post("/hooks/helpscout/hs", content=hs_body, headers=forged_hs).status_code == 401
    assert app.post("/hooks/zendesk/nope", content=body, headers=good).status_code == 404
    assert app.post("/hooks/helpscout/zd", content=body, headers=good).status_code == 404
    assert _events(sqlite_url) == [] and _enqueued(namespace) == 0
    reasons = [r.getMessage() for r in caplog.records]
    assert sum("refused" in r for r in reasons) == len(cases) + 3      # and the Help Scout forgery, the two 404s
    assert any("signature does not match" in r for r in reasons) and any("stale" in r for r in reasons)
    assert any("over the 4096-byte limit" in r for r in reasons)


def test_a_missing_webhook_secret_refuses_deliveries(app: TestClient, sqlite_url: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TEST_ZD_SECRET")
    body = ZendeskServer.webhook_body(42, current_user=2002)
    assert app.post("/hooks/zendesk/zd", content=body, headers=_zd(body)).status_code == 503
    assert _events(sqlite_url) == []


def test_help_scout_deliveries_out_of_order_are_each_kept_and_guarded_in_the_worker(
        app: TestClient, sqlite_url: str, namespace: str) -> None:
    with HelpScoutServer() as hs:
        convo = hs.add_conversation("Invoice", threads=("<p>invoice?</p>",))
        first = hs.payload(convo)
        hs.add_thread(convo, "<p>ours</p>", kind="note", by=hs.bot)
        second = hs.payload(convo)
        other = hs.add_conversation("Elsewhere", mailbox_id=78, threads=("<p>hi</p>",))
        elsewhere = hs.payload(other)
    sent = [(second, "convo.note.created"), (first, "convo.customer.reply.created"), (elsewhere, "convo.created"),
            (first, "convo.customer.reply.created")]
    for body, event in sent:
        assert app.post("/hooks/helpscout/hs", content=body,
                        headers=HelpScoutServer.webhook_headers(SECRET, body, event)).status_code == 200
    rows = _events(sqlite_url)
    assert [(r.event_type, r.deliveries) for r in rows] == [
        ("convo.note.created", 1), ("convo.customer.reply.created", 2), ("convo.created", 1)]
    assert _enqueued(namespace) == 3
    for row in rows:
        assert row.id is not None
        helpdesk.process_event(config.current(), row.id)
        assert helpdesk.process_event(config.current(), row.id) is None     # a redelivery does nothing
    states = [(r.state, r.reason) for r in _events(sqlite_url)]
    assert states == [(HelpdeskEventState.IGNORED, "caused by our own API user 11"),
                      (HelpdeskEventState.ACCEPTED, ""),
                      (HelpdeskEventState.IGNORED, "conversation of mailbox 78, not 77")]


def test_helpdesk_check_verifies_credentials_and_prints_the_setup(tmp_path, capsys: pytest.CaptureFixture[str],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_ZD_TOKEN", "zd-token")
    monkeypatch.setenv("TEST_ZD_SECRET", SECRET)
    monkeypatch.setenv("TEST_HS_SECRET", "app-secret")
    monkeypatch.setenv("TEST_HS_WEBHOOK", SECRET)
    with ZendeskServer() as zd, HelpScoutServer() as hs:
        path = tmp_path / "config.toml"
        path.write_text(f"""
[database]
url = "sqlite:///{tmp_path}/m.db"
[helpdesks.zd]
kind = "zendesk"
base_url = "{zd.base_url}"
email = "bot@acme.test"
api_token_env = "TEST_ZD_TOKEN"
bot_user_id = {zd.bot}
webhook_secret_env = "TEST_ZD_SECRET"
[helpdesks.hs]
kind = "helpscout"
base_url = "{hs.base_url}"
client_id = "app-id"
client_secret_env = "TEST_HS_SECRET"
bot_user_id = 11
webhook_secret_env = "TEST_HS_WEBHOOK"
""")
        assert main(["--config", str(path), "helpdesk", "check", "zd", "--public-url", "https://ma.acme.test"]) == 0
        out = capsys.readouterr().out
        assert f"credentials OK against {zd.base_url}: acting as user {zd.bot}" in out
        assert "https://ma.acme.test/hooks/zendesk/zd" in out and f"Current user  Is not  (the API user, id {zd.bot})" in out
        assert '"ticket_id": "{{ticket.id}}"' in out and "Approve AI draft" in out
        assert main(["--config", str(path), "helpdesk", "check", "hs"]) == 0
        out = capsys.readouterr().out
        assert "acting as user 11" in out and "convo.customer.reply.created" in out
        monkeypatch.setenv("TEST_ZD_TOKEN", "wrong")
        assert main(["--config", str(path), "helpdesk", "check", "zd"]) == 78
        assert "refused our credentials" in capsys.readouterr().err
        path.write_text(path.read_text().replace(f"bot_user_id = {zd.bot}", "bot_user_id = 5"))
        monkeypatch.setenv("TEST_ZD_TOKEN", "zd-token")
        assert main(["--config", str(path), "helpdesk", "check", "zd"]) == 78
        assert "bot_user_id = 5, but the credentials act as user" in capsys.readouterr().err
