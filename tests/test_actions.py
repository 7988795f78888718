"""Actions with side effects, end to end: a refund the offline model proposes waits for a rep (the
shipped policy pre-approves nothing), runs exactly once when approved, and the reply confirms
exactly what ran; a rejection is explained; redelivered and concurrent resumes, a worker killed
between the backend's success and our commit, and a backend that is down all end in one refund;
a takeover sends even pre-approvable refunds to a rep; limits are checked again in the call
path; the CLI and the append-only audit log.

DESIGN invariants 2 (an action executes at most once) and 4 (the model never decides alone on
money). The demo backend is seeded from `examples/backend.toml`; the HTTP backend talks to
`tests/support/actions_server.py`, an independent implementation of the company API contract.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from freezegun import freeze_time
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlmodel import col, select

from mailagent import cli, config
from mailagent.actions import proposals
from mailagent.actions.backends.demo import seed
from mailagent.actions.execute import OutcomeUnknown
from mailagent.config import Settings
from mailagent.pipeline import drafting, sweeper
from mailagent.policy import current_policy
from mailagent.review import ReviewError, takeover
from mailagent.review import actions as review_actions
from mailagent.review import drafts as review_drafts
from mailagent.store import audit as audit_log
from mailagent.store import db
from mailagent.store.models import ActionState, AuditEntry, DraftState, Outbound, now

from .conftest import make_settings
from .support.actions_flow import (
    DANIEL,
    LUKAS,
    SAMPLE,
    SMALL_REFUNDS_RULE,
    Customer,
    actions,
    add_small_refunds,
    drafts,
    effects,
    events,
    extra_customers,
    order,
    paused_run,
    policies,
    refund_mail,
    store_proposals,
    write_config,
)
from .support.actions_server import ActionsServer
from .support.flow import deliver_all, draft, receive, synced
from .support.mails import mail
from .support.smtpd import SmtpServer

REP = "rep@example.com"
SECRET = "actions-test-secret-5b0e"
SECRET_ENV = "MAILAGENT_TEST_ACTIONS_SECRET"
CONFIRM_RULE = "the rep who approved an action sees its confirmation"
DOUBTFUL = "policy:annual refunds after the 14-day window"          # NN-1013: annual, 37 days old
AGENT = {"company": "Nimbus Notes", "allowed_link_domains": ["nimbusnotes.example"],
         "docs_url": "https://docs.nimbusnotes.example"}
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def no_trace_export(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)     # the SDK's exporter could not authenticate


def demo_settings(url: str, tmp_path: Path, smtp: SmtpServer | None = None, *, small_refunds: bool = False,
                  **sections: Any) -> Settings:
    """The offline model, the demo backend seeded with the sample company, the shipped policy."""
    seed(url, SAMPLE)
    return synced(make_settings(
        url, smtp={"port": smtp.port if smtp else 1},
        policy={"directory": str(policies(tmp_path, small_refunds=small_refunds)), "reload_seconds": 0},
        agent=AGENT, **sections))


def outbound(url: str) -> list[Outbound]:
    with db.reading(url) as s:
        return list(s.exec(select(Outbound).order_by(col(Outbound.id))))


def run_cli(capsys: pytest.CaptureFixture[str], config_path: Path, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = cli.main(["--config", str(config_path), *args])
    out, err = capsys.readouterr()
    return code, out, err


def decide(url: str, action_id: int, approve: bool, reason: str = "") -> None:
    settings = Settings.model_validate({"database": {"url": url}})
    if approve:
        review_actions.approve(settings, action_id, REP)
    else:
        review_actions.reject(settings, action_id, REP, reason)


def send_confirmation(settings: Settings, draft_id: int, text: str | None = None) -> int:
    """The rep who approved the action sends the reply that confirms it (or their edit of it)."""
    row = draft(settings, draft_id)
    assert row.state == DraftState.HELD and row.rule == CONFIRM_RULE, (row.state, row.rule)
    return review_drafts.approve(settings, draft_id, REP, text).outbound_id


def waiting_refund(settings: Settings, raw: bytes) -> tuple[int, int]:
    """Receive a refund request; it must wait for a rep: (draft id, action id)."""
    [outcome] = receive(settings, raw)
    assert outcome.step is drafting.Step.WAITING, outcome
    waiting = [a for a in actions(settings.database.url) if a.draft_id == outcome.draft_id]
    assert [a.state for a in waiting] == [ActionState.PROPOSED]
    assert outcome.draft_id is not None and waiting[0].id is not None
    return outcome.draft_id, waiting[0].id


# --- the flow with a rep ------------------------------------------------------------------------

def test_a_refund_waits_for_a_rep_runs_once_when_approved_and_the_reply_confirms_exactly_that(
        sqlite_url: str, tmp_path: Path, smtp_server: SmtpServer, capsys: pytest.CaptureFixture[str]) -> None:
    settings = demo_settings(sqlite_url, tmp_path, smtp_server)
    [outcome] = receive(settings, refund_mail(DANIEL, "NN-1013"))

    # The run paused on the refund: the draft waits, the proposal is stored and audited, nothing ran.
    assert outcome.step is drafting.Step.WAITING and outcome.outbound_id is None
    row = draft(settings, outcome.draft_id)
    assert row.state == DraftState.WAITING and row.run_state
    [action] = actions(sqlite_url)
    assert action.draft_id == outcome.draft_id and action.conversation_id == row.conversation_id
    assert action.tool == "issue_refund" and action.state == ActionState.PROPOSED and action.decided_by is None
    assert action.arguments["order_id"] == "NN-1013" and action.arguments["amount"] == "400.00"
    assert action.amount == 400.0 and action.currency == "EUR" and action.customer == DANIEL.email
    assert action.idempotency_key.startswith("ma-")
    assert events(sqlite_url) == [("agent", "proposed"), (DOUBTFUL, "awaits_rep")]
    assert "14-day window" in action.reasons[-1] and "14-day window" in row.reasons[0]     # shown before approving
    assert order(sqlite_url, "NN-1013").refunded == 0 and effects(sqlite_url).operations == []
    assert outbound(sqlite_url) == []

    # A rep approves; the paused run continues and runs the refund, once.
    decide(sqlite_url, action.id, approve=True)
    resumed = drafting.resume_draft_sync(settings, outcome.draft_id)
    assert resumed.step is drafting.Step.DECIDED and resumed.outbound_id is None
    [action] = actions(sqlite_url)
    assert action.state == ActionState.EXECUTED and action.decided_by == REP and action.executed_at is not None
    assert action.result is not None and action.result["amount"] == "400.00" and action.result["replayed"] is False
    done = order(sqlite_url, "NN-1013")
    assert done.refunded == 400.0 and done.status == "refunded"
    assert effects(sqlite_url).operations == [("issue_refund", "NN-1013", "400.00")]
    assert events(sqlite_url) == [("agent", "proposed"), (DOUBTFUL, "awaits_rep"),
                                  (REP, "approved"), ("system", "executed")]

    # The reply confirms exactly that amount; it waits for the rep who approved, who sends it, once.
    row = draft(settings, outcome.draft_id)
    assert not [f for f in row.flags if f.startswith("output:")]
    assert "400.00 EUR" in row.text and "NN-1013" in row.text
    assert outbound(sqlite_url) == []
    assert send_confirmation(settings, outcome.draft_id) is not None
    deliver_all(settings)
    [got] = smtp_server.received
    assert got.recipients == [DANIEL.email] and b"400.00 EUR" in got.data.replace(b"=\r\n", b"")

    # Approving it again fails with a clear message and changes nothing.
    config_path = write_config(tmp_path / "config.toml", sqlite_url, policy_dir=Path(settings.policy.directory),
                               smtp_port=smtp_server.port, agent=AGENT)
    code, out, err = run_cli(capsys, config_path, "actions", "approve", str(action.id), "--as", REP)
    assert code == 1 and out == ""
    assert f"action {action.id} is executed (decided by {REP}): only proposed actions can be decided" in err
    assert drafting.resume_draft_sync(settings, outcome.draft_id).step is drafting.Step.NOTHING
    deliver_all(settings)
    assert len(smtp_server.received) == 1 and len(outbound(sqlite_url)) == 1
    assert order(sqlite_url, "NN-1013").refunded == 400.0 and len(effects(sqlite_url).operations) == 1
    assert [e for _, e in events(sqlite_url)].count("executed") == 1


def test_a_rejected_refund_is_not_run_and_the_reps_internal_reason_never_reaches_the_reply(
        sqlite_url: str, tmp_path: Path, smtp_server: SmtpServer) -> None:
    settings = demo_settings(sqlite_url, tmp_path, smtp_server)
    draft_id, action_id = waiting_refund(settings, refund_mail(DANIEL, "NN-1013"))
    with pytest.raises(ReviewError, match="needs a reason"):
        decide(sqlite_url, action_id, approve=False, reason="  ")
    reason = "the renewal reminder was emailed on 2 October and the annual term is non-refundable"
    decide(sqlite_url, action_id, approve=False, reason=reason)

    resumed = drafting.resume_draft_sync(settings, draft_id)
    assert resumed.step is drafting.Step.DECIDED and resumed.outbound_id is None
    [action] = actions(sqlite_url)
    assert action.state == ActionState.REJECTED and action.decided_by == REP and action.reasons == [reason]
    assert action.executed_at is None and action.result is None
    row = draft(settings, draft_id)
    assert row.state == DraftState.HELD and "NN-1013" in row.text
    assert "renewal reminder" not in row.text and "non-refundable" not in row.text     # internal: audit log only
    assert drafting.NOT_APPROVED.split(".")[0] not in row.text and "Do not say" not in row.text   # nor what the agent is told
    assert "refunded" not in row.text.lower()
    assert order(sqlite_url, "NN-1013").refunded == 0 and effects(sqlite_url).operations == []
    assert events(sqlite_url) == [("agent", "proposed"), (DOUBTFUL, "awaits_rep"), (REP, "rejected")]
    deliver_all(settings)
    assert smtp_server.received == [] and outbound(sqlite_url) == []


# --- exactly once ---------------------------------------------------------------------------------

def test_a_redelivered_or_concurrent_resume_runs_the_refund_once(any_db_url: str, tmp_path: Path,
                                                                 smtp_server: SmtpServer) -> None:
    settings = demo_settings(any_db_url, tmp_path, smtp_server)

    # The same resume message delivered twice, one after the other.
    first_draft, first_action = waiting_refund(settings, refund_mail(DANIEL, "NN-1013"))
    decide(any_db_url, first_action, approve=True)
    assert drafting.resume_draft_sync(settings, first_draft).step is drafting.Step.DECIDED
    assert drafting.resume_draft_sync(settings, first_draft).step is drafting.Step.NOTHING

    # And twice at the same moment, from two workers.
    second_draft, second_action = waiting_refund(settings, refund_mail(LUKAS, "NN-1026"))
    decide(any_db_url, second_action, approve=True)
    start = threading.Barrier(2)
    results: list[drafting.Outcome | BaseException] = []

    def worker() -> None:
        start.wait()
        try:
            results.append(drafting.resume_draft_sync(settings, second_draft))
        except BaseException as exc:  # noqa: BLE001 - reported below
            results.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(str(getattr(r, "step", r)) for r in results) == ["decided", "nothing"], results

    for action_id, order_id, amount in ((first_action, "NN-1013", 400.0), (second_action, "NN-1026", 16.0)):
        [action] = [a for a in actions(any_db_url) if a.id == action_id]
        assert action.state == ActionState.EXECUTED
        assert order(any_db_url, order_id).refunded == amount
        assert events(any_db_url, action_id).count(("system", "executed")) == 1
    assert effects(any_db_url).operations == [("issue_refund", "NN-1013", "400.00"),
                                              ("issue_refund", "NN-1026", "16.00")]
    for draft_id in (first_draft, second_draft):
        send_confirmation(settings, draft_id)
    deliver_all(settings)
    assert sorted(r.recipients[0] for r in smtp_server.received) == sorted([DANIEL.email, LUKAS.email])
    assert len(outbound(any_db_url)) == 2


def _wait_for(condition: Any, what: str, proc: subprocess.Popen[bytes] | None = None, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the worker exited ({proc.returncode}) before {what}:\n{out.decode()}\n{err.decode()}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_a_worker_killed_between_the_backends_success_and_our_commit_refunds_once(
        sqlite_url: str, tmp_path: Path, smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real SIGKILL while the company API has applied the refund and not answered yet. The
    server's `drop_response_next` is the fault that applies the change and then holds the answer
    (`delay_next` waits *before* applying, which would not test this)."""
    monkeypatch.setenv(SECRET_ENV, SECRET)
    with ActionsServer(SECRET) as server:
        policy_dir = policies(tmp_path)
        config_path = write_config(
            tmp_path / "config.toml", sqlite_url, policy_dir=policy_dir, smtp_port=smtp_server.port,
            http={"base_url": server.base_url, "secret_env": SECRET_ENV, "timeout_seconds": 60, "max_retries": 0},
            agent=AGENT, clock={"stuck_after_seconds": 1}, worker={"lease_seconds": 1},
        )
        settings = synced(config.use(config.load(config_path)))
        draft_id, action_id = waiting_refund(settings, refund_mail(DANIEL, "NN-1013"))
        conversation_id = draft(settings, draft_id).conversation_id
        before = len(server.requests)

        # The worker resumes in-process (memory broker): it looks the customer up (answered at
        # once), then posts the refund, which the server applies and never answers.
        server.delay_next(0)
        server.drop_response_next()
        worker = subprocess.Popen(
            [sys.executable, "-m", "mailagent", "--config", str(config_path), "actions", "approve",
             str(action_id), "--as", REP],
            cwd=REPO, env={**os.environ, SECRET_ENV: SECRET}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            _wait_for(lambda: len(server.refunds) == 1, "the refund to be applied", worker)
            posted = server.requests[-1]
            assert (posted.method, posted.path, posted.status) == ("POST", "/v1/refunds", None)
            time.sleep(0.2)                        # the worker is blocked reading the answer
            assert worker.poll() is None
        finally:
            worker.send_signal(signal.SIGKILL)
            worker.wait(timeout=30)
        assert worker.returncode == -signal.SIGKILL

        # Our database knows the rep approved it, not that it ran; the draft is claimed by the dead worker.
        [action] = actions(sqlite_url)
        assert action.state == ActionState.APPROVED and action.decided_by == REP and action.result is None
        assert draft(settings, draft_id).state == DraftState.DRAFTING
        assert ("system", "executed") not in events(sqlite_url) and outbound(sqlite_url) == []

        # A duplicate resume message while the dead worker's lease lives does nothing; once the
        # lease ran out (nobody renewed it), the sweeper hands the conversation to `draft_reply`,
        # which continues the paused run.
        assert drafting.resume_draft_sync(settings, draft_id).step is drafting.Step.NOTHING
        time.sleep(max(settings.worker.lease_seconds, settings.clock.stuck_after_seconds) + 0.1)
        due = sweeper.find_due(settings, timedelta(seconds=settings.clock.stuck_after_seconds))
        assert conversation_id in due.draft
        outcome = drafting.draft_reply_sync(settings, conversation_id)
        assert outcome.step is drafting.Step.DECIDED and outcome.draft_id == draft_id

        # The same idempotency key again: the server answers 409 with the original refund.
        posts = [r for r in server.requests[before:] if r.method == "POST"]
        assert [(r.path, r.status) for r in posts] == [("/v1/refunds", None), ("/v1/refunds", 409)]
        assert {r.headers["idempotency-key"] for r in posts} == {action.idempotency_key}
        [refund] = server.refunds
        assert refund["order_id"] == "NN-1013" and refund["amount"] == "400.00"
        [action] = actions(sqlite_url)
        assert action.state == ActionState.EXECUTED and action.result is not None
        assert action.result["refund_id"] == refund["refund_id"] and action.result["replayed"] is True
        assert events(sqlite_url).count(("system", "executed")) == 1

        assert "400.00 EUR" in draft(settings, draft_id).text
        send_confirmation(settings, draft_id)
        assert [d.id for d in drafts(sqlite_url)] == [draft_id] and len(outbound(sqlite_url)) == 1
        deliver_all(settings)
        assert len(smtp_server.received) == 1
        assert drafting.resume_draft_sync(settings, draft_id).step is drafting.Step.NOTHING
        assert len(server.refunds) == 1


def test_a_backend_that_is_down_leaves_the_outcome_unknown_and_a_later_resume_runs_it_once(
        sqlite_url: str, tmp_path: Path, smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    with ActionsServer(SECRET) as server:
        settings = synced(make_settings(
            sqlite_url, smtp={"port": smtp_server.port}, agent=AGENT,
            policy={"directory": str(policies(tmp_path)), "reload_seconds": 0},
            actions={"backend": "http", "http": {"base_url": server.base_url, "secret_env": SECRET_ENV,
                                                  "timeout_seconds": 5, "max_retries": 1}},
        ))
        draft_id, action_id = waiting_refund(settings, refund_mail(DANIEL, "NN-1013"))
        decide(sqlite_url, action_id, approve=True)

        # Every attempt answers 503: the customer lookup (tolerated) and the refund (2 attempts each).
        before = len(server.requests)
        server.fail_next(503, times=4)
        with pytest.raises(OutcomeUnknown, match="outcome is unknown"):
            drafting.resume_draft_sync(settings, draft_id)
        tried = server.requests[before:]
        assert [r.status for r in tried] == [503] * 4
        assert [(r.method, r.path) for r in tried[-2:]] == [("POST", "/v1/refunds")] * 2
        assert server.refunds == []

        [action] = actions(sqlite_url)
        assert action.state == ActionState.APPROVED and action.result is None and action.executed_at is None
        row = draft(settings, draft_id)
        assert row.state == DraftState.WAITING and row.run_state
        assert ("system", "executed") not in events(sqlite_url) and outbound(sqlite_url) == []
        assert draft_id in sweeper.find_due(settings, timedelta(0)).resume

        # The API is back: the sweeper's resume runs it, once, with the same key.
        resumed = drafting.resume_draft_sync(settings, draft_id)
        assert resumed.step is drafting.Step.DECIDED
        [refund] = server.refunds
        [action] = actions(sqlite_url)
        assert action.state == ActionState.EXECUTED and action.result is not None
        assert action.result["refund_id"] == refund["refund_id"] and action.result["replayed"] is False
        posts = [r for r in server.requests[before:] if r.method == "POST"]
        assert {r.headers["idempotency-key"] for r in posts} == {action.idempotency_key}
        send_confirmation(settings, draft_id)
        assert draft_id not in sweeper.find_due(settings, timedelta(0)).resume
        assert drafting.resume_draft_sync(settings, draft_id).step is drafting.Step.NOTHING
        assert len(server.refunds) == 1 and len(outbound(sqlite_url)) == 1
        assert events(sqlite_url).count(("system", "executed")) == 1


# --- takeover -----------------------------------------------------------------------------------

def test_a_taken_conversation_is_never_auto_sent_nor_auto_approved_until_released(
        sqlite_url: str, tmp_path: Path, smtp_server: SmtpServer) -> None:
    settings = demo_settings(sqlite_url, tmp_path, smtp_server)
    question = "I clicked 'forgot password' but the password reset email never arrives. How do I reset my password?"
    [first] = receive(settings, mail(1, sender=LUKAS.address, subject="Password reset email never arrives",
                                     body=question, message_id="t1.lukas@customer.example"))
    assert draft(settings, first.draft_id).state == DraftState.SENT          # the agent may answer here
    conversation_id = draft(settings, first.draft_id).conversation_id

    takeover.take(settings, conversation_id, REP)
    [second] = receive(settings, mail(2, sender=LUKAS.address, subject="Re: Password reset email never arrives",
                                      body=question, message_id="t2.lukas@customer.example",
                                      in_reply_to="t1.lukas@customer.example"))
    row = draft(settings, second.draft_id)
    assert row.conversation_id == conversation_id
    assert row.state == DraftState.HELD and row.rule == "invariant: a human took over"

    # With small refunds pre-approved, the same refund goes to a rep while the conversation is taken.
    add_small_refunds(Path(settings.policy.directory))
    [third] = receive(settings, refund_mail(LUKAS, "NN-1026", in_reply_to="t2.lukas@customer.example",
                                            message_id="t3.lukas@customer.example"))
    assert third.step is drafting.Step.WAITING and draft(settings, third.draft_id).conversation_id == conversation_id
    [held] = actions(sqlite_url)
    assert held.state == ActionState.PROPOSED and held.decided_by is None
    assert held.reasons and "a rep took the conversation over" in held.reasons[0]
    assert events(sqlite_url, held.id) == [("agent", "proposed"), ("policy:invariant: a human took over", "awaits_rep")]
    assert order(sqlite_url, "NN-1026").refunded == 0

    # Handed back: the next refund request is pre-approved again, runs once and is confirmed.
    takeover.release(settings, conversation_id, REP)
    [fourth] = receive(settings, refund_mail(LUKAS, "NN-1026", in_reply_to="t3.lukas@customer.example",
                                             message_id="t4.lukas@customer.example"))
    assert fourth.step is drafting.Step.DECIDED
    old, new = actions(sqlite_url)
    assert new.draft_id == fourth.draft_id and new.state == ActionState.EXECUTED
    assert new.decided_by == SMALL_REFUNDS_RULE
    assert old.state == ActionState.REJECTED and old.decided_by == "system"       # superseded, never run
    assert order(sqlite_url, "NN-1026").refunded == 16.0
    assert effects(sqlite_url).operations == [("issue_refund", "NN-1026", "16.00")]
    assert draft(settings, fourth.draft_id).state == DraftState.SENT
    assert draft(settings, third.draft_id).state == DraftState.SUPERSEDED
    takeovers = [(e.actor, e.event, e.conversation_id) for e in _audit(sqlite_url) if e.event in ("taken", "released")]
    assert takeovers == [(REP, "taken", conversation_id), (REP, "released", conversation_id)]
    deliver_all(settings)
    assert len(smtp_server.received) == 2                     # the first answer and the confirmation


def _audit(url: str) -> list[AuditEntry]:
    with db.reading(url) as s:
        return list(s.exec(select(AuditEntry).order_by(col(AuditEntry.id))))


# --- limits in the call path --------------------------------------------------------------------

def test_a_policy_approval_is_refused_at_execution_when_the_limits_were_used_up_since(
        sqlite_url: str, tmp_path: Path, smtp_server: SmtpServer) -> None:
    """Approved yesterday by the small-refunds rule but not run (say the backend was down); today
    another small refund for the same customer was approved and ran. Running the old one now would
    pay out more than 20 EUR to the customer within 24 hours: it is refused in the call path."""
    settings = demo_settings(sqlite_url, tmp_path, smtp_server, small_refunds=True)
    data, [customer] = extra_customers(tmp_path, {"maya@two-orders.example": [("XO-9101", "15.00"),
                                                                               ("XO-9102", "15.00")]})
    seed(sqlite_url, data)

    stale_draft, result = paused_run(settings, refund_mail(customer, "XO-9101"))
    with freeze_time(now() - timedelta(hours=25)):
        [stale] = store_proposals(settings, stale_draft, result, current_policy(settings))
    assert stale.state == ActionState.APPROVED and stale.decided_by == SMALL_REFUNDS_RULE and stale.amount == 15.0

    [today] = receive(settings, refund_mail(customer, "XO-9102"))
    assert today.step is drafting.Step.DECIDED
    [_, ran] = actions(sqlite_url)
    assert ran.state == ActionState.EXECUTED and ran.decided_by == SMALL_REFUNDS_RULE
    assert order(sqlite_url, "XO-9102").refunded == 15.0

    resumed = drafting.resume_draft_sync(settings, stale_draft)
    assert resumed.step is drafting.Step.DECIDED and resumed.outbound_id is None
    assert order(sqlite_url, "XO-9101").refunded == 0
    assert effects(sqlite_url).operations == [("issue_refund", "XO-9102", "15.00")]
    refusals = [e for e in _audit(sqlite_url) if e.action_id == stale.id and e.event == "refused"]
    assert len(refusals) == 1 and refusals[0].actor == "system"
    assert "refund_per_customer_per_day" in refusals[0].details["reason"]
    assert draft(settings, stale_draft).state == DraftState.HELD
    assert "refunded" not in draft(settings, stale_draft).text.lower()
    [stale] = [a for a in actions(sqlite_url) if a.id == stale.id]
    assert stale.executed_at is None and stale.result is None
    # Refused in the call path, the approval must not stay "approved" (looking runnable, and
    # counted against the day's limits for 24 hours).
    assert stale.state != ActionState.APPROVED, "an action refused at execution is still marked approved"


def test_two_refunds_pre_approved_in_a_race_never_pay_past_the_limit(pg_url: str, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """On PostgreSQL two proposals for one customer can be decided at the same moment in two
    transactions; neither sees the other, so both are pre-approved. The call path sees both."""
    settings = demo_settings(pg_url, tmp_path, small_refunds=True)
    data, [customer] = extra_customers(tmp_path, {"maya@two-orders.example": [("XO-9101", "15.00"),
                                                                               ("XO-9102", "15.00")]})
    seed(pg_url, data)
    first_draft, first = paused_run(settings, refund_mail(customer, "XO-9101"))
    second_draft, second = paused_run(settings, refund_mail(customer, "XO-9102"))
    policy = current_policy(settings)

    racing: list[str] = []
    original_propose = proposals.propose

    def propose_while_the_other_commits(*args: Any, **kwargs: Any) -> Any:
        action = original_propose(*args, **kwargs)
        if not racing:                               # the first transaction is still open here
            racing.append("second")
            store_proposals(settings, second_draft, second, policy)
        return action

    monkeypatch.setattr(proposals, "propose", propose_while_the_other_commits)
    store_proposals(settings, first_draft, first, policy)
    monkeypatch.undo()
    decided = actions(pg_url)
    assert [(a.state, a.decided_by) for a in decided] == [(ActionState.APPROVED, SMALL_REFUNDS_RULE)] * 2

    for draft_id in (second_draft, first_draft):
        assert drafting.resume_draft_sync(settings, draft_id).step is drafting.Step.DECIDED
    paid = order(pg_url, "XO-9101").refunded + order(pg_url, "XO-9102").refunded
    assert paid <= 20.0
    executed = [a for a in actions(pg_url) if a.state == ActionState.EXECUTED]
    assert sum(a.amount or 0 for a in executed) == paid
    assert len(executed) < 2
    assert [e for e in events(pg_url) if e[1] == "refused"]


# --- the CLI and the audit log ------------------------------------------------------------------

def test_cli_actions_audit_and_takeover(sqlite_url: str, tmp_path: Path, smtp_server: SmtpServer,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    settings = demo_settings(sqlite_url, tmp_path, smtp_server)
    draft_id, action_id = waiting_refund(settings, refund_mail(DANIEL, "NN-1013"))
    conversation_id = draft(settings, draft_id).conversation_id
    config_path = write_config(tmp_path / "config.toml", sqlite_url, policy_dir=Path(settings.policy.directory),
                               smtp_port=smtp_server.port, agent=AGENT)

    code, out, _ = run_cli(capsys, config_path, "actions", "list", "--json")
    assert code == 0
    [row] = json.loads(out)
    assert {"id", "conversation_id", "tool", "arguments", "state", "decided_by", "idempotency_key"} <= set(row)
    assert row["id"] == action_id and row["conversation_id"] == conversation_id and row["tool"] == "issue_refund"
    assert row["arguments"]["order_id"] == "NN-1013" and row["state"] == "proposed" and row["decided_by"] is None
    assert row["idempotency_key"] == actions(sqlite_url)[0].idempotency_key
    code, out, _ = run_cli(capsys, config_path, "actions", "show", str(action_id))
    assert code == 0 and "NN-1013" in out and "awaits_rep" in out

    code, out, _ = run_cli(capsys, config_path, "conversations", "take", str(conversation_id), "--as", REP)
    assert code == 0 and f"conversation {conversation_id} taken by {REP}" in out
    code, _, err = run_cli(capsys, config_path, "conversations", "take", str(conversation_id), "--as", "other@example.com")
    assert code == 1 and f"already taken by {REP}" in err
    code, out, _ = run_cli(capsys, config_path, "conversations", "release", str(conversation_id), "--as", REP)
    assert code == 0 and "released" in out
    code, _, err = run_cli(capsys, config_path, "conversations", "release", str(conversation_id), "--as", REP)
    assert code == 1 and "is not taken" in err

    reason = "order NN-1013 was used in October"
    code, out, _ = run_cli(capsys, config_path, "actions", "reject", str(action_id), "--reason", reason, "--as", REP)
    assert code == 0 and f"action {action_id} rejected by {REP}" in out
    assert draft(settings, draft_id).state == DraftState.HELD          # resumed in-process: the reply is held
    code, out, _ = run_cli(capsys, config_path, "actions", "list", "--json", "--state", "rejected")
    [row] = json.loads(out)
    assert row["state"] == "rejected" and row["decided_by"] == REP
    code, _, err = run_cli(capsys, config_path, "actions", "approve", str(action_id), "--as", REP)
    assert code == 1 and "is rejected (decided by " in err and "only proposed actions can be decided" in err
    assert effects(sqlite_url).operations == []

    code, out, _ = run_cli(capsys, config_path, "audit", "list", "--json")
    assert code == 0
    rows = json.loads(out)
    assert all({"id", "at", "actor", "event", "conversation_id", "draft_id", "action_id", "details"} <= set(r)
               for r in rows)
    assert [(r["actor"], r["event"]) for r in rows] == [
        ("agent", "proposed"), (DOUBTFUL, "awaits_rep"), (REP, "taken"), (REP, "released"),
        (REP, "rejected")]
    assert rows[-1]["details"]["reasons"] == [reason] and rows[-1]["action_id"] == action_id
    code, out, _ = run_cli(capsys, config_path, "audit", "list", "--json", "--conversation", str(conversation_id + 99))
    assert code == 0 and json.loads(out) == []


def test_the_audit_log_is_append_only(any_db_url: str) -> None:
    with db.session(any_db_url) as s:
        audit_log.record(s, REP, "taken", conversation_id=None, note="kept")
    for statement in ("UPDATE audit_log SET actor = 'someone else'", "DELETE FROM audit_log"):
        with pytest.raises(DBAPIError, match="append-only"), db.session(any_db_url) as s:
            s.execute(text(statement))
    [entry] = _audit(any_db_url)
    assert (entry.actor, entry.event, entry.details) == (REP, "taken", {"note": "kept"})


# --- a rep's refusal binds the target, across conversations -------------------------------------

def test_a_reps_refusal_binds_the_order_for_the_customer_in_a_new_conversation(
        sqlite_url: str, tmp_path: Path, smtp_server: SmtpServer) -> None:
    data, [customer] = extra_customers(tmp_path, {"maya@two-orders.example": [("XO-9201", "15.00"),
                                                                               ("XO-9202", "12.00")]})
    shipped = demo_settings(sqlite_url, tmp_path, smtp_server)
    seed(sqlite_url, data)
    _, refused = waiting_refund(shipped, refund_mail(customer, "XO-9201"))
    decide(sqlite_url, refused, approve=False, reason="the annual term is non-refundable")

    # Later, under a policy that pre-approves small refunds, the customer writes again about the
    # same order in a new thread: it waits for a rep, with the earlier refusal as its reason.
    small = demo_settings(sqlite_url, tmp_path, smtp_server, small_refunds=True)
    seed(sqlite_url, data)
    _, again = waiting_refund(small, refund_mail(customer, "XO-9201", subject="Money back please (XO-9201)"))
    [first, second] = actions(sqlite_url)
    assert first.conversation_id != second.conversation_id and second.id == again
    assert second.state == ActionState.PROPOSED and second.decided_by is None
    assert REP in second.reasons[0] and "XO-9201" in second.reasons[0] and f"action {refused}" in second.reasons[0]
    assert order(sqlite_url, "XO-9201").refunded == 0 and effects(sqlite_url).operations == []
    assert ("system", "awaits_rep") in [(a, e) for a, e in events(sqlite_url)]

    # Another order of the same customer is not bound by it: the policy pre-approves it.
    [other] = receive(small, refund_mail(customer, "XO-9202"))
    assert other.step is drafting.Step.DECIDED
    assert order(sqlite_url, "XO-9202").refunded == 12.0


# --- a backend that lies (issue 12) -------------------------------------------------------------

def _http_small_refunds(url: str, tmp_path: Path, smtp: SmtpServer, server: ActionsServer) -> Settings:
    return synced(make_settings(
        url, smtp={"port": smtp.port}, agent=AGENT,
        policy={"directory": str(policies(tmp_path, small_refunds=True)), "reload_seconds": 0},
        actions={"backend": "http", "http": {"base_url": server.base_url, "secret_env": SECRET_ENV,
                                              "timeout_seconds": 5, "max_retries": 1, "deadline_seconds": 10}},
    ))


def _with_small_order(tmp_path: Path) -> tuple[Path, Customer]:
    """The sample company and one plus customer with a 15 EUR order charged yesterday, in one file."""
    extra, [customer] = extra_customers(tmp_path, {"maya@small-order.example": [("XO-9301", "15.00")]})
    both = tmp_path / "backend-with-extra.toml"
    customers = extra.read_text().replace('tier = "plus"', 'tier = "plus"\ncompany = "Small Order"\ncountry = "DE"')
    both.write_text(SAMPLE.read_text() + "\n" + customers)
    return both, customer


def test_a_refund_made_then_500s_is_settled_by_the_same_key_not_refused_by_a_recheck(
        sqlite_url: str, tmp_path: Path, smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    data, customer = _with_small_order(tmp_path)
    with ActionsServer(SECRET, data=data) as server:
        settings = _http_small_refunds(sqlite_url, tmp_path, smtp_server, server)
        # The policy approves it; the API applies the refund, then answers 500 to it and its retry.
        server.answer_after_next(500, b'{"error": {"code": "internal", "message": "db timeout"}}', only="/v1/refunds")
        server.fail_next(500, only="/v1/refunds")
        with pytest.raises(OutcomeUnknown):
            receive(settings, refund_mail(customer, "XO-9301"))
        assert len(server.refunds) == 1
        [action] = actions(sqlite_url)
        assert action.state == ActionState.APPROVED and action.decided_by == SMALL_REFUNDS_RULE
        assert ("system", "outcome_unknown") in events(sqlite_url)

        # Later the API answers again. A fresh check of the facts would find nothing left to refund
        # and fail the action though the money moved; the same key gets the backend's record.
        resumed = drafting.resume_draft_sync(settings, action.draft_id)
        assert resumed.step is drafting.Step.DECIDED
        [action] = actions(sqlite_url)
        assert action.state == ActionState.EXECUTED and action.result and action.result["replayed"] is True
        assert action.result["refund_id"] == server.refunds[0]["refund_id"] and len(server.refunds) == 1


@pytest.mark.parametrize(("lie", "error"), [
    (lambda refund: {**refund, "status": "failed"}, "'failed', not done"),
    (lambda refund: {**refund, "order_id": "NN-1013", "amount": "500.00", "currency": "USD"},
     "does not match the request"),
])
def test_a_refund_the_backend_reports_failed_or_for_something_else_is_not_executed_nor_confirmed(
        sqlite_url: str, tmp_path: Path, smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch,
        lie: Any, error: str) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    data, customer = _with_small_order(tmp_path)
    with ActionsServer(SECRET, data=data) as server:
        settings = _http_small_refunds(sqlite_url, tmp_path, smtp_server, server)
        server.answer_after_next(201, lie, only="/v1/refunds")
        [outcome] = receive(settings, refund_mail(customer, "XO-9301"))
        [action] = actions(sqlite_url)
        assert action.state == ActionState.FAILED and error in (action.error or "")
        assert ("system", "executed") not in events(sqlite_url)
        row = draft(settings, outcome.draft_id)
        assert row.state != DraftState.SENT
        deliver_all(settings)
        assert smtp_server.received == []
