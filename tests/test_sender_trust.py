"""A header is a claim: under the shipped policy and under `small-refunds.toml`, a forged From
(our MTA says DMARC failed, Reply-To to the attacker) and a thread hijacked by another sender get
no account data, no action and no mail, and wait for a rep saying why; the same request from the
authenticated customer is refunded under small-refunds (so the policy would have acted)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import col, select

from mailagent.actions.backends.demo import seed
from mailagent.config import Settings
from mailagent.store import db
from mailagent.store.models import Action, ActionState, Draft, DraftState

from .conftest import make_settings
from .support.actions_flow import (
    LUKAS,
    SAMPLE,
    SMALL_REFUNDS_RULE,
    effects,
    policies,
    refund_mail,
)
from .support.flow import deliver_all, receive, synced
from .support.mails import MX, mail
from .support.smtpd import SmtpServer

AGENT = {"company": "Nimbus Notes", "allowed_link_domains": ["nimbusnotes.example"],
         "docs_url": "https://docs.nimbusnotes.example"}
POLICIES = ["shipped", "small_refunds"]
REFUND = "Hi,\n\nI was charged for order NN-1026 after we stopped using the app. Please refund it.\n\nThanks"


def _settings(url: str, tmp_path: Path, smtp: SmtpServer, policy: str) -> Settings:
    seed(url, SAMPLE)
    return synced(make_settings(url, smtp={"port": smtp.port}, agent=AGENT, policy={
        "directory": str(policies(tmp_path, small_refunds=policy == "small_refunds")), "reload_seconds": 0}))


def _drafts(url: str) -> list[Draft]:
    with db.reading(url) as s:
        return list(s.exec(select(Draft).order_by(col(Draft.id))))


def _actions(url: str) -> list[Action]:
    with db.reading(url) as s:
        return list(s.exec(select(Action).order_by(col(Action.id))))


def _waits_for_a_rep_saying_why(url: str) -> None:
    """Nothing ran; the turn's draft waits for a rep with the sender as the reason."""
    assert effects(url).operations == []
    draft = _drafts(url)[-1]
    reasons = " ".join([*draft.reasons, draft.needs_human_reason, *(r for a in _actions(url) for r in a.reasons)])
    assert draft.state in (DraftState.HELD, DraftState.WAITING), draft.state
    assert "account data withheld" in reasons or "not verified as the account holder" in reasons, reasons
    assert all(a.state == ActionState.PROPOSED for a in _actions(url))
    assert "NN-1026" not in str(draft.request.get("customer_details", {}) if draft.request else "")


@pytest.mark.parametrize("policy", POLICIES)
def test_the_authenticated_customer_is_served_as_the_policy_says(policy: str, sqlite_url: str, tmp_path: Path,
                                                                 smtp_server: SmtpServer) -> None:
    settings = _settings(sqlite_url, tmp_path, smtp_server, policy)
    receive(settings, refund_mail(LUKAS, "NN-1026"))
    ran = effects(sqlite_url).operations
    if policy == "small_refunds":
        assert ran == [("issue_refund", "NN-1026", "16.00")]
        assert [a.decided_by for a in _actions(sqlite_url)] == [SMALL_REFUNDS_RULE]
    else:
        assert ran == [] and [a.state for a in _actions(sqlite_url)] == [ActionState.PROPOSED]


@pytest.mark.parametrize("policy", POLICIES)
def test_a_forged_sender_gets_no_refund_no_data_and_no_mail(policy: str, sqlite_url: str, tmp_path: Path,
                                                            smtp_server: SmtpServer) -> None:
    settings = _settings(sqlite_url, tmp_path, smtp_server, policy)
    forged = mail(1, sender=f"{LUKAS.name} <{LUKAS.address}>", subject="Refund request - order NN-1026", body=REFUND,
                  authenticated=False, headers={"Reply-To": "refunds@attacker.example"})
    verdict = (f"Authentication-Results: {MX}; dkim=fail header.d=fjord-labs.example; "
               "spf=fail smtp.mailfrom=fjord-labs.example; dmarc=fail header.from=fjord-labs.example\r\n")
    receive(settings, verdict.encode() + forged)
    deliver_all(settings)
    _waits_for_a_rep_saying_why(sqlite_url)
    assert smtp_server.received == []


@pytest.mark.parametrize("policy", POLICIES)
def test_a_hijacked_thread_gets_no_refund_no_data_and_no_mail(policy: str, sqlite_url: str, tmp_path: Path,
                                                              smtp_server: SmtpServer) -> None:
    settings = _settings(sqlite_url, tmp_path, smtp_server, policy)
    receive(settings, mail(1, sender=LUKAS.address, subject="Exporting my notes", message_id="lukas1@fjord-labs.example",
                           body="Hi, how do I export all my notes as Markdown? Thanks, Lukas"))
    deliver_all(settings)
    answered = len(smtp_server.received)
    # another sender, authenticated for its own domain, answers in Lukas's thread
    receive(settings, mail(2, sender="mallory@attacker.example", subject="Re: Exporting my notes", body=REFUND,
                           in_reply_to="lukas1@fjord-labs.example", references=["lukas1@fjord-labs.example"]))
    deliver_all(settings)
    assert len({d.conversation_id for d in _drafts(sqlite_url)}) == 1       # it did land in Lukas's conversation
    _waits_for_a_rep_saying_why(sqlite_url)
    assert all("attacker.example" not in r for m in smtp_server.received for r in m.recipients)
    assert len(smtp_server.received) == answered
