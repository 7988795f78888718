"""The web process: health and metrics."""

from __future__ import annotations

from starlette.testclient import TestClient

from mailagent.pipeline.ingest import Inbound, store_many
from mailagent.web.app import create_app

from .conftest import make_settings
from .support.mails import mail


def test_health_and_metrics(sqlite_url: str) -> None:
    store_many(sqlite_url, [Inbound(mail(1), "file"), Inbound(mail(2), "file")])
    client = TestClient(create_app(make_settings(sqlite_url)))
    assert client.get("/healthz").json() == {"ok": True}
    metrics = client.get("/metrics").text
    assert 'mailagent_messages{state="stored",kind=""} 2' in metrics


def test_health_fails_when_the_database_does_not_answer() -> None:
    client = TestClient(create_app(make_settings("postgresql+psycopg://nobody@127.0.0.1:1/none")))
    response = client.get("/healthz")
    assert response.status_code == 503 and response.json()["ok"] is False
