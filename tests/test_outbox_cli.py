"""`mailagent outbox list|show|retry|resolve`: a rep sees how far each delivery got and what the
server last said, settles unknown outcomes (audit-logged), and retries failed replies through the
one send path, never a delivered one."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import select

from mailagent.review import ReviewError
from mailagent.review import outbox as verbs
from mailagent.store import db
from mailagent.store.models import AuditEntry, Outbound

from .conftest import make_settings
from .support.flow import SEND_EVERYTHING, deliver_all, policy_dir, receive, synced
from .support.learning import mailagent, mailagent_json
from .support.mails import mail
from .support.smtpd import SmtpServer

QUESTION = {"subject": "Password reset email never arrives",
            "body": "I clicked 'forgot password' but the reset email never arrives. How do I reset my password?"}


@pytest.fixture
def setup(sqlite_url: str, tmp_path: Path, smtp_server: SmtpServer):
    policies = policy_dir(tmp_path, SEND_EVERYTHING)
    settings = synced(make_settings(sqlite_url, smtp={"port": smtp_server.port},
                                    agent={"allowed_link_domains": ["nimbusnotes.example"]},
                                    policy={"directory": policies, "reload_seconds": 0}))
    config = tmp_path / "config.toml"
    config.write_text(f'[database]\nurl = "{sqlite_url}"\n[policy]\ndirectory = "{policies}"\n'
                      f'[agent]\nallowed_link_domains = ["nimbusnotes.example"]\n'
                      f'[mailboxes.support]\naddress = "support@example.com"\n'
                      f'[mailboxes.support.smtp]\nhost = "127.0.0.1"\nport = {smtp_server.port}\nsecurity = "none"\n')
    return settings, config


def _replies(url: str) -> dict[int, Outbound]:
    with db.reading(url) as s:
        return {o.id: o for o in s.exec(select(Outbound))}


def test_unknown_deliveries_are_shown_settled_and_retried_once(setup, smtp_server: SmtpServer,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    settings, config = setup
    url = settings.database.url
    smtp_server.handler.drop_in_data = True              # takes both messages, then hangs up: unknown
    receive(settings, mail(1, sender="ann@customer.example", **QUESTION), mail(2, sender="bob@customer.example", **QUESTION))
    deliver_all(settings)
    assert len(smtp_server.received) == 2
    smtp_server.handler.drop_in_data = False

    unknown = mailagent_json(capsys, config, "outbox", "list", "--state", "unknown")
    assert [r["id"] for r in unknown] == [1, 2] and mailagent_json(capsys, config, "outbox", "list", "--state", "sent") == []
    assert unknown[0]["smtp_phase"] == "data" and unknown[0]["smtp_last_reply"].startswith("250")
    assert unknown[0]["recipients"] == ["ann@customer.example"]
    code, out, _ = mailagent(capsys, config, "outbox", "show", "1")
    assert code == 0 and "smtp_phase       data" in out and "smtp_last_reply  250" in out and "Hi" in out

    # an unknown one is never retried as it is
    code, _, err = mailagent(capsys, config, "outbox", "retry", "1", "--as", "rita@example.com")
    assert code == 1 and "may have been delivered" in err and len(smtp_server.received) == 2

    # rep checked: the first did not arrive, the second did
    code, out, _ = mailagent(capsys, config, "outbox", "resolve", "1", "--failed", "--note", "not in Ann's inbox",
                             "--as", "rita@example.com")
    assert code == 0 and "resolved as failed" in out
    assert mailagent(capsys, config, "outbox", "resolve", "2", "--delivered", "--as", "rita@example.com")[0] == 0
    replies = _replies(url)
    assert replies[1].state == "failed" and "not in Ann's inbox" in (replies[1].last_error or "")
    assert replies[2].state == "sent" and replies[2].resolved_by == "rita@example.com"
    code, _, err = mailagent(capsys, config, "outbox", "resolve", "2", "--failed")
    assert code == 1 and "only an unknown delivery" in err

    # the failed one goes out again by the one send path (here, in this process), the same bytes
    code, out, _ = mailagent(capsys, config, "outbox", "retry", "1", "--as", "rita@example.com")
    assert code == 0 and "reply 1: sent" in out
    assert len(smtp_server.received) == 3 and smtp_server.received[2].data == smtp_server.received[0].data
    code, _, err = mailagent(capsys, config, "outbox", "retry", "1")
    assert code == 1 and "was delivered; retrying would send it twice" in err and len(smtp_server.received) == 3
    assert {r["delivery"] for r in mailagent_json(capsys, config, "drafts", "list")} == {"sent"}

    with db.reading(url) as s:
        trail = [(e.actor, e.event, e.details.get("outbound_id"), e.details.get("resolved_as"))
                 for e in s.exec(select(AuditEntry).order_by(AuditEntry.id)) if e.event.startswith("delivery")]
    assert trail == [("rita@example.com", "delivery_resolved", 1, "failed"),
                     ("rita@example.com", "delivery_resolved", 2, "delivered"),
                     ("rita@example.com", "delivery_retried", 1, None)]
    code, out, _ = mailagent(capsys, config, "outbox", "show", "1")
    assert "delivery_resolved" in out and "delivery_retried" in out


def test_a_failed_delivery_keeps_the_servers_answer_and_phase(setup, smtp_server: SmtpServer) -> None:
    settings, _ = setup
    smtp_server.handler.refuse["ann@customer.example"] = "550 5.1.1 no such user"
    receive(settings, mail(1, sender="ann@customer.example", **QUESTION))
    deliver_all(settings)
    [reply] = _replies(settings.database.url).values()
    assert reply.state == "failed" and reply.smtp_phase == "rcpt" and reply.smtp_last_reply == "550 5.1.1 no such user"
    with pytest.raises(ReviewError, match="no reply with id 9"):
        verbs.retry(settings, 9, "rita@example.com")
