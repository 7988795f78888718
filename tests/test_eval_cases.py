"""Eval cases: every rep's verdict becomes one case (a redacted snapshot of what the agent saw, the
draft, the rep's final, what changed), within one run of the periodic job; flags and curation
from the command line."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import func, update
from sqlmodel import select

from mailagent.evals import cases, learning, replay, snapshot
from mailagent.policy import Policy
from mailagent.review import drafts
from mailagent.store import db
from mailagent.store.models import Draft, EvalCase, Message
from mailagent.worker import clock

from .support.learning import answer, ask, config_file, desk, hold_all, mailagent, mailagent_json

RESET = ("Password reset email never arrives", "I clicked forgot password but the reset email never arrives. "
                                               "What can I do?")
DARK = ("Dark mode?", "Is there a dark mode in the Nimbus app? I work at night.")
DARK_FINAL = ("Hi Bob,\n\nYes: Nimbus Notes has a dark theme. Open Settings → Appearance → Theme and choose Dark. "
              "It follows your system setting if you pick Automatic.\n\nBest regards,\nAna")


def all_cases(url: str) -> dict[int | None, EvalCase]:
    with db.reading(url) as s:
        return {c.draft_id: c for c in s.exec(select(EvalCase))}


def test_every_verdict_becomes_one_case_with_its_source(any_db_url: str, tmp_path: Path) -> None:
    settings = desk(any_db_url, policy=hold_all(tmp_path))
    approved, edited = ask(settings, *RESET), ask(settings, *RESET, sender="carol@customer.example")
    written, rejected = ask(settings, *DARK), ask(settings, "Invoice", "Where is my invoice for May?")
    answer(settings, approved)
    with db.reading(any_db_url) as s:
        original = s.get(Draft, edited)
        assert original is not None
    answer(settings, edited, original.text.replace("5 minutes", "10 minutes") + "\nAlso check the Promotions tab.")
    answer(settings, written, DARK_FINAL)
    drafts.reject(settings, rejected, "ana@example", "wrong invoice: look it up first")

    assert cases.build(settings) == 4
    assert cases.build(settings) == 0                          # idempotent: one case per verdict
    found = all_cases(any_db_url)
    assert {d: c.source for d, c in found.items()} == {approved: "approved", edited: "edit", written: "rep-written",
                                                       rejected: "rejected"}
    assert found[approved].reference == found[approved].draft and found[approved].changes["similarity"] == 1.0
    assert "10 minutes" in found[edited].changes["facts_added"]
    assert found[written].changes["facts_added"][0] == "Open Settings → Appearance → Theme"
    assert found[rejected].reference is None and found[rejected].note == "wrong invoice: look it up first"
    assert {"intent:password_reset", "language:en"} <= set(found[approved].tags)
    assert any(t.startswith("rule:") for t in found[approved].tags)
    assert all(c.state == "new" and c.request["subject"] for c in found.values())


def test_a_case_is_a_redacted_snapshot_that_stays_replayable_after_the_data_changes(sqlite_url: str) -> None:
    settings = desk(sqlite_url)
    secret = "My password: Hunter22x and card 4111 1111 1111 1111. " + DARK[1]
    draft_id = ask(settings, DARK[0], secret, sender="jonas.becker@mailbox.example")    # a demo customer
    answer(settings, draft_id, DARK_FINAL + "\nYour password Hunter22x is safe with us.")
    learning.build(settings)
    case = all_cases(sqlite_url)[draft_id]
    stored = str(case.request) + case.reference + case.draft                              # type: ignore[operator]
    assert "Hunter22x" not in stored and "4111" not in stored and "[REDACTED:password]" in case.request["latest"]
    assert case.request["customer_details"]["name"] == "Jonas Becker"   # the customer's facts, as the agent saw them

    with db.session(sqlite_url) as s:                   # the mail changes afterwards; the case does not
        s.execute(update(Message).values(reply_text="something else entirely", subject="changed"))
    request = snapshot.load(all_cases(sqlite_url)[draft_id].request)
    assert request.subject == DARK[0] and "dark mode" in request.latest
    import asyncio

    again = asyncio.run(replay.replay(settings, Policy(), [], request))
    assert again.result.draft is not None and again.decision.decision == "hold"


def test_a_drafts_own_snapshot_is_what_the_case_keeps(sqlite_url: str) -> None:
    settings = desk(sqlite_url)
    draft_id = ask(settings, *DARK)
    with db.reading(sqlite_url) as s:
        row = s.get(Draft, draft_id)
        assert row is not None
        rebuilt = snapshot.request_for_draft(s, settings, row)
    assert rebuilt is not None and rebuilt.subject == DARK[0]
    stored = snapshot.dump(rebuilt) | {"latest": "what the pipeline stored at draft time"}
    with db.session(sqlite_url) as s:
        s.execute(update(Draft).where(Draft.id == draft_id).values(request=stored))
    answer(settings, draft_id, DARK_FINAL)
    cases.build(settings)
    assert all_cases(sqlite_url)[draft_id].request["latest"] == "what the pipeline stored at draft time"


def test_two_builders_at_once_store_each_case_once(pg_url: str, tmp_path: Path) -> None:
    settings = desk(pg_url, policy=hold_all(tmp_path))
    for n in range(6):
        answer(settings, ask(settings, *RESET, sender=f"user{n}@customer.example"))
    threads = [threading.Thread(target=cases.build, args=(settings,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with db.reading(pg_url) as s:
        assert s.exec(select(func.count()).select_from(EvalCase)).one() == 6


def test_the_clock_builds_cases_within_its_interval(sqlite_url: str) -> None:
    """The real scheduler with a short interval: a rep's edit becomes a case without anyone asking."""
    settings = desk(sqlite_url, evals={"case_interval_seconds": 0.2})
    scheduler = BackgroundScheduler(timezone="UTC")
    calls: list[str] = []

    def enqueue(actor: str) -> None:
        calls.append(actor)
        if actor == "build_eval_cases":
            learning.build(settings)

    clock.schedule(scheduler, settings, lambda name: None, lambda: None, enqueue)
    assert {j.id: j.trigger.interval.total_seconds() for j in scheduler.get_jobs() if j.id != "sweep"} == {
        "build_eval_cases": 0.2, "record_quality": 300.0}
    draft_id = ask(settings, *DARK)
    scheduler.start()
    try:
        answer(settings, draft_id, DARK_FINAL)
        deadline = time.monotonic() + 10
        while draft_id not in all_cases(sqlite_url) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        scheduler.shutdown()
    case = all_cases(sqlite_url)[draft_id]
    assert "build_eval_cases" in calls and (case.created_at - case.rep_at).total_seconds() >= 0


def test_the_actor_runs_the_learning_step_in_process(sqlite_url: str, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import dramatiq

    from mailagent.worker import broker
    from mailagent.worker.inprocess import InProcess

    monkeypatch.setattr(broker, "_installed", broker._installed)      # the in-process broker stays in this test
    monkeypatch.setattr(dramatiq.broker, "global_broker", dramatiq.broker.global_broker)
    settings = desk(sqlite_url)
    answer(settings, ask(settings, *DARK), DARK_FINAL)
    with InProcess(settings) as app:
        app.actors.build_eval_cases.send()
        app.actors.record_quality.send()
        app.until_idle()
    assert [c.source for c in all_cases(sqlite_url).values()] == ["rep-written"]


def test_flag_and_curate_from_the_command_line(sqlite_url: str, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    settings = desk(sqlite_url, policy=hold_all(tmp_path))
    config = config_file(tmp_path, settings, f'[policy]\ndirectory = "{settings.policy.directory}"\n')
    answer(settings, ask(settings, *DARK), DARK_FINAL)
    reset = ask(settings, *RESET)
    assert mailagent(capsys, config, "evals", "build")[1].startswith("1 new case(s), 1 new knowledge suggestion(s)")

    (tmp_path / "should.txt").write_text("Hi,\n\nThe reset link is valid for 60 minutes; check your spam folder.\n")
    code, out, _ = mailagent(capsys, config, "evals", "flag", "2", "--note", "must name the 60 minutes",
                             "--reference", str(tmp_path / "should.txt"), "--as", "lead@example")
    assert code == 0 and "case 2 (flag) from draft" in out
    assert mailagent(capsys, config, "evals", "flag", "2", "--note", "again")[0] == 0          # the same case
    [one, flagged] = mailagent_json(capsys, config, "evals", "list")
    assert flagged["source"] == "flag" and flagged["draft_id"] == reset and flagged["note"] == "must name the 60 minutes"
    assert one["source"] == "rep-written" and one["seconds_to_case"] >= 0 and one["has_reference"]
    assert set(one) >= {"id", "origin", "state", "tags", "edit_distance", "similarity", "facts_added", "rep_at",
                        "created_at", "curated_by"}

    assert mailagent(capsys, config, "evals", "accept", "1", "2", "--as", "lead@example")[1] == "accepted: case(s) 1, 2\n"
    assert mailagent(capsys, config, "evals", "drop", "2")[0] == 0
    assert mailagent(capsys, config, "evals", "tag", "1", "--add", "topic:ui", "--remove", "language:en")[0] == 0
    [shown] = mailagent_json(capsys, config, "evals", "show", "1")
    assert shown["state"] == "accepted" and shown["curated_by"] == "lead@example" and "topic:ui" in shown["tags"]
    assert "language:en" not in shown["tags"] and shown["reference"] == DARK_FINAL and shown["request"]["latest"]
    text = mailagent(capsys, config, "evals", "show", "1")[1]
    assert "--- what the agent saw" in text and "--- the rep's final (reference) ---" in text
    assert [c["id"] for c in mailagent_json(capsys, config, "evals", "list", "--state", "accepted")] == [1]
    assert [c["id"] for c in mailagent_json(capsys, config, "evals", "list", "--tag", "topic:ui")] == [1]

    for args, message in ((("evals", "accept", "1", "99"), "no eval case with id 99"),
                          (("evals", "show", "42"), "no eval case with id 42"),
                          (("evals", "tag", "1", "--add", "two words"), "a tag is one word"),
                          (("evals", "tag", "1"), "say what to change"),
                          (("evals", "flag", "99", "--note", "x"), "no conversation with id 99"),
                          (("evals", "flag", "2", "--note", " "), "a flag needs a note")):
        code, _, err = mailagent(capsys, config, *args)
        assert code == 1 and message in err, (args, err)
    assert [c["state"] for c in mailagent_json(capsys, config, "evals", "list")] == ["accepted", "dropped"]
