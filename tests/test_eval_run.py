"""`mailagent eval run` as a CI gate: replays with no side effects, grades, stores runs, compares
with a baseline; fails when the instructions are broken on purpose and passes when restored; runs
cases in parallel within the bound; candidate configs (model, instructions, knowledge, policy)."""

from __future__ import annotations

import asyncio
import json as jsonlib
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func
from sqlmodel import select

from mailagent.agent.offline import excerpt
from mailagent.config import DATA, ConfigError
from mailagent.evals import candidate, cases, runs, sets
from mailagent.evals.graders import Sample
from mailagent.evals.judges import Judge
from mailagent.evals.runs import Outcome
from mailagent.evals.sets import Gate
from mailagent.review import actions as action_review
from mailagent.store import db
from mailagent.store.models import (
    Action,
    Article,
    DemoOperation,
    EvalResult,
    EvalRun,
    Outbound,
    TraceRecord,
)
from mailagent.worker import dispatch

from .support.learning import answer, ask, config_file, desk, hold_all, mailagent, mailagent_json
from .support.openai_server import OpenAIServer, RecordedRequest, Step, error, json, tool_call

KEY_ENV = "MAILAGENT_TEST_MODEL_KEY"
QUESTIONS = [
    ("Password reset email never arrives", "I clicked forgot password but the reset email never arrives. What can I do?"),
    ("Download invoices", "Where can I download my invoices as PDF?"),
    ("Export my data", "How do I export all my notes and data?"),
    ("API rate limit", "We keep hitting the API rate limit, what are the limits per minute?"),
    ("Change my email address", "How can I change the email address of my account?"),
]
GATE_SET = """description = "What reps approved, graded without a judge"
[select]
states = ["accepted"]
[gate]
max_score_drop = 0.05
min_pass_rate = 1.0
[[graders]]
kind = "required_facts"
threshold = 0.6
[[graders]]
kind = "language"
[[graders]]
kind = "no_unfulfilled_promise"
[[graders]]
kind = "no_secrets"
"""
SEARCH_RULE = ("- Answer only from the knowledge base. Call `search_knowledge` before you answer, with the customer's\n"
               "  question in their own words, and cite the ids of the articles you used in `cited_articles`.\n")


@pytest.fixture(autouse=True)
def model_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-loopback-only")


def accepted_cases(settings: Any, questions: list[tuple[str, str]] = QUESTIONS) -> list[int]:
    """Customers ask, reps approve the drafts, a lead accepts the cases."""
    for n, question in enumerate(questions):
        answer(settings, ask(settings, *question, sender=f"user{n}@customer.example"))
    cases.build(settings)
    with db.reading(settings.database.url) as s:
        ids = [c.id for c in cases.select_cases(s, cases.Filter())]
    cases.curate(settings.database.url, ids, "accepted", "lead@example")
    return ids


def live_config(tmp_path: Path, settings: Any, evals: str = "") -> Path:
    folder = tmp_path / "sets"
    folder.mkdir(exist_ok=True)
    (folder / "gate.toml").write_text(GATE_SET)
    shutil.copy(DATA / "evals" / "default.toml", folder / "default.toml")
    return config_file(tmp_path, settings, f'[policy]\ndirectory = "{settings.policy.directory}"\n'
                                           f'[evals]\nsets = "{folder}"\n{evals}')


# --- an OpenAI-compatible model that follows its instructions -------------------------------------

_CUSTOMER = re.compile(r"<customer_message subject=(?P<q>['\"])(?P<subject>.*?)(?P=q)>\n(?P<body>.*?)\n</customer_message>",
                       re.DOTALL)


def obedient(request: RecordedRequest) -> Step:
    """A scripted model that does what the system prompt says, and nothing more: when told to
    search the knowledge base it does, and answers from the article found; when not told, it
    answers from "memory" (a vague reply). It signs off as the prompt says."""
    prompt = request.system_prompt
    found = _CUSTOMER.search(request.first_user_message or "")
    subject, body = (found["subject"], found["body"]) if found else ("", "")
    sign_off = prompt.split("Sign every reply with:\n", 1)[-1].split("\n\n", 1)[0]
    results = [r for r in request.tool_results if r.name == "search_knowledge"]
    if not results and "Call `search_knowledge`" in prompt:
        return tool_call("search_knowledge", {"query": f"{subject}\n{body}"})
    hits = jsonlib.loads(results[0].output) if results else []
    if hits:
        hit = hits[0]
        text = f"Our guide “{hit['title']}” says:\n\n{excerpt(hit['content'], body)}"
        cited, confidence = [hit["id"]], 0.9
    else:
        text, cited, confidence = "We are looking into it and will get back to you shortly.", [], 0.9
    return json({"reply": f"Hi,\n\n{text}\n\n{sign_off}", "confidence": confidence, "intent": "how_to",
                 "language": "en", "cited_articles": cited, "needs_human": False, "needs_human_reason": ""})


def openai_candidate(tmp_path: Path, server: OpenAIServer, name: str, template: str) -> Path:
    (tmp_path / f"{name}.md.j2").write_text(template)
    path = tmp_path / f"{name}.toml"
    path.write_text(f"""[model]
provider = "openai"
name = "gpt-scripted"
base_url = "{server.base_url}"
api_key_env = "{KEY_ENV}"
llm_injection_check = false
max_retries = 0
[agent]
company = "Nimbus Notes"
allowed_link_domains = ["nimbusnotes.example", "example.com"]
instructions = "{name}.md.j2"
""")
    return path


def test_the_gate_fails_when_the_instructions_are_broken_and_passes_when_restored(
        sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = desk(sqlite_url, policy=hold_all(tmp_path))
    accepted_cases(settings)
    config = live_config(tmp_path, settings)
    shipped = (DATA / "instructions.md.j2").read_text()
    assert SEARCH_RULE in shipped
    with OpenAIServer(responder=obedient) as server:
        good = openai_candidate(tmp_path, server, "good", shipped)
        broken = openai_candidate(tmp_path, server, "broken", shipped.replace(SEARCH_RULE, "- Be brief.\n"))

        code, out, err = mailagent(capsys, config, "eval", "run", "--set", "gate", "--config", str(good))
        assert code == 0 and "gate: passed" in out and f"{len(QUESTIONS)} passed, 0 failed" in out, out + err
        assert "[" in err and f"{len(QUESTIONS)}/{len(QUESTIONS)} cases" in err                # the progress bar
        assert server.model_requests and all(r.model == "gpt-scripted" for r in server.model_requests)

        code, out, _ = mailagent(capsys, config, "eval", "run", "--set", "gate", "--config", str(broken),
                                 "--baseline", "1")
        assert code == 1 and "gate: FAILED" in out, out
        assert f"{len(QUESTIONS)} case(s) passed in run 1 and fail now" in out and "required_facts" in out

        [restored] = mailagent_json(capsys, config, "eval", "run", "--set", "gate", "--config", str(good),
                                    "--baseline", "1")
    assert restored["gate_passed"] is True and restored["baseline_id"] == 1 and restored["passed"] == len(QUESTIONS)
    assert all(r["baseline_passed"] and r["reply"].startswith("Hi,") for r in restored["results"])
    listed = mailagent_json(capsys, config, "eval", "runs")
    assert [(r["id"], r["gate_passed"]) for r in listed] == [(1, True), (2, False), (3, True)]
    assert listed[0]["prompt_version"] == listed[2]["prompt_version"] != listed[1]["prompt_version"]
    code, out, _ = mailagent(capsys, config, "eval", "run", "--set", "gate", "--config", str(broken),
                             "--baseline", "last")                       # against the restored run, it fails again
    assert code == 1 and "passed in run 3 and fail now" in out


def test_the_judge_asks_the_configured_model_and_distrusts_an_answer_off_its_scale(sqlite_url: str) -> None:
    answers = iter([json({"score": 0.82, "reason": "matches the reference"}), json({"score": 7, "reason": "!"}),
                    error(500, "down")])
    with OpenAIServer(responder=lambda _: next(answers)) as server:
        settings = desk(sqlite_url, model={"provider": "openai", "name": "judge-model", "base_url": server.base_url,
                                           "api_key_env": KEY_ENV, "max_retries": 0})
        judge = Judge(rubric="correctness", settings=settings)
        sample = Sample(reply="The link is valid for 60 minutes.", customer_text="Reset?", reference="60 minutes.")
        good, off_scale, down = (asyncio.run(judge.agrade(sample)) for _ in range(3))
        asked = server.model_requests[0]
    assert good is not None and (good.score, good.reason, good.passed) == (0.82, "matches the reference", True)
    assert off_scale is not None and off_scale.score == 0.0 and "outside 0..1" in off_scale.reason
    assert down is not None and not down.passed and "the judge failed" in down.reason
    assert asked.model == "judge-model" and asked.json_schema is not None
    assert "<reference_reply>\n60 minutes.\n</reference_reply>" in (asked.last_user_message or "")


def test_replays_have_no_side_effects(sqlite_url: str, tmp_path: Path) -> None:
    """A refund case (a rep refused the refund): the replay proposes the refund again and stops
    there: no action row, no backend operation, nothing in the outbox; the actions grader marks
    the proposal a rep refused."""
    settings = desk(sqlite_url)
    draft_id = ask(settings, "Refund request - order NN-1013", "I was charged for order NN-1013, but our team "
                   "stopped using the app before the renewal. Could you please refund it?",
                   sender="daniel.okafor@brightpath.example")
    with db.reading(sqlite_url) as s:
        [action] = s.exec(select(Action).where(Action.draft_id == draft_id)).all()
    action_review.reject(settings, action.id or 0, "ana@example", "renewals are not refunded after use")
    dispatch.resume(settings, draft_id)
    case = cases.flag(settings, 1, "lead@example", "no refund for a used renewal")
    cases.curate(sqlite_url, [case.id or 0], "accepted", "lead@example")

    def counts() -> tuple[int, ...]:
        with db.reading(sqlite_url) as s:
            return tuple(s.exec(select(func.count()).select_from(t)).one() for t in (Action, DemoOperation, Outbound))

    before = counts()
    stored = runs.run(settings, sets.load(settings, "default"))
    assert counts() == before
    [outcome] = stored.outcomes
    assert [p["tool"] for p in outcome.proposals] == ["issue_refund"] and outcome.reply == ""
    assert [(g.grader, g.passed) for g in outcome.grades] == [("actions", False)]
    assert outcome.grades[0].reason == "proposed issue_refund; expected nothing"
    with db.reading(sqlite_url) as s:                    # its trace is kept apart from the conversation's
        assert s.exec(select(TraceRecord).where(TraceRecord.id == outcome.trace_id)).one().group_id == "0"


def test_cases_run_in_parallel_within_the_bound(sqlite_url: str, tmp_path: Path) -> None:
    in_flight, peak = 0, 0

    async def slow(request: RecordedRequest) -> Step:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.3)
        in_flight -= 1
        return obedient(request)

    settings = desk(sqlite_url, policy=hold_all(tmp_path), evals={"concurrency": 3})
    accepted_cases(settings, QUESTIONS + [(q, b + " Thanks!") for q, b in QUESTIONS[:3]])
    with OpenAIServer(responder=slow) as server:
        good = openai_candidate(tmp_path, server, "good", (DATA / "instructions.md.j2").read_text())
        stored = runs.run(settings, sets.load(settings, "default"), config_file=str(good))
    assert stored.run.cases == 8 and peak == 3


def test_the_gate_judges_against_the_shared_cases_of_the_baseline() -> None:
    from mailagent.evals.graders import Grade

    def outcome(case_id: int, score: float, passed: bool) -> Outcome:
        return Outcome(case_id, "edit", score, passed, (Grade("required_facts", score, "", 0.6),))

    def result(case_id: int, score: float, passed: bool) -> EvalResult:
        return EvalResult(run_id=1, case_id=case_id, score=score, passed=passed,
                          grades=[{"grader": "required_facts", "score": score, "passed": passed}])

    gate, base = Gate(max_score_drop=0.05, min_pass_rate=0.8), EvalRun(id=1, set_name="default")
    before = [result(1, 1.0, True), result(2, 0.9, True)]
    assert runs.judge([outcome(1, 1.0, True), outcome(2, 0.88, True), outcome(3, 0.0, False)], gate, base, before).passed
    regressed = runs.judge([outcome(1, 0.5, False), outcome(2, 0.9, True)], gate, base, before)
    assert not regressed.passed and regressed.regressions == (1,)
    assert any("mean score fell from 0.950 to 0.700" in r for r in regressed.reasons)
    assert any("grader required_facts fell" in r for r in regressed.reasons)
    assert not runs.judge([], gate, None, []).passed
    assert not runs.judge([outcome(1, 0.3, False), outcome(2, 1.0, True)], gate, None, []).passed
    assert runs.judge([outcome(1, 1.0, True)] * 4 + [outcome(5, 0.1, False)], gate, None, []).passed


def test_a_knowledge_change_is_evaluated_in_a_scratch_database(sqlite_url: str, tmp_path: Path) -> None:
    settings = desk(sqlite_url, policy=hold_all(tmp_path))
    accepted_cases(settings, QUESTIONS[:2])
    smaller = tmp_path / "kb"
    shutil.copytree(DATA / "knowledge", smaller)
    (smaller / "password-reset.en.md").unlink()
    (tmp_path / "kb.toml").write_text(f'[knowledge]\ndirectory = "{smaller}"\n')
    with db.reading(sqlite_url) as s:
        articles = s.exec(select(func.count()).select_from(Article)).one()
    stored = runs.run(settings, sets.load(settings, "default"), config_file=str(tmp_path / "kb.toml"))
    by_case = {o.case_id: o for o in stored.outcomes}
    assert not by_case[1].passed and by_case[2].passed            # the reset article is gone, invoices are not
    assert stored.run.config["knowledge"] == str(smaller)
    with db.reading(sqlite_url) as s:                             # the live knowledge base is untouched
        assert s.exec(select(func.count()).select_from(Article)).one() == articles


def test_a_candidate_config_may_only_set_model_agent_knowledge_and_policy(sqlite_url: str, tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    settings = desk(sqlite_url)
    (tmp_path / "bad.toml").write_text('[model]\nprovider = "offline"\n[database]\nurl = "sqlite:///other.db"\n'
                                       '[agent]\nvoice = 3\n')
    with pytest.raises(ConfigError) as exc:
        candidate.load(settings, tmp_path / "bad.toml")
    assert str(exc.value) == (f"{tmp_path / 'bad.toml'}:3: database: a candidate config sets only [model], [agent], "
                              "[knowledge], [policy]")
    (tmp_path / "typo.toml").write_text('[agent]\nvoice = 3\n')
    config = live_config(tmp_path, settings)
    code, _, err = mailagent(capsys, config, "eval", "run", "--config", str(tmp_path / "typo.toml"))
    assert code == 78 and f"{tmp_path / 'typo.toml'}:2: agent.voice: input should be a valid string" in err
    code, _, err = mailagent(capsys, config, "eval", "run", "--set", "missing")
    assert code == 78 and "no eval set named 'missing'" in err
    code, out, _ = mailagent(capsys, config, "eval", "run")
    assert code == 1 and "the set selects no case: nothing was evaluated" in out
    code, _, err = mailagent(capsys, config, "eval", "run", "--baseline", "7")
    assert code == 1 and "no eval run '7'" in err


def test_a_run_is_stored_with_each_cases_grades(sqlite_url: str, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    settings = desk(sqlite_url, policy=hold_all(tmp_path))
    accepted_cases(settings, QUESTIONS[:2])
    config = live_config(tmp_path, settings)
    [run] = mailagent_json(capsys, config, "eval", "run")
    assert run["gate_passed"] and run["cases"] == 2 and run["model"] == "offline-kb-v1" and run["score"] > 0.8
    assert set(run["scores"]) >= {"required_facts", "model:correctness", "language", "tone"}
    [shown] = mailagent_json(capsys, config, "eval", "show", str(run["id"]))
    assert [r["case_id"] for r in shown["results"]] == [1, 2]
    assert {g["grader"] for g in shown["results"][0]["grades"]} >= {"required_facts", "no_secrets"}
    assert shown["results"][0]["decision"] == "hold" and shown["results"][0]["seconds"] > 0
    text = mailagent(capsys, config, "eval", "show", str(run["id"]))[1]
    assert "required_facts 1.00" in text
