"""`mailagent eval run`: replay every case of a set against a config, grade, store, compare with a
baseline run, and say whether the gate passes (a CI gate before a prompt, model, knowledge or
policy change ships).

Cases run in parallel, at most `[evals] concurrency` at a time (asyncio with a semaphore), each a
replay with no side effects (`replay.py`). A case passes when every grader that applies passes;
its score is the weighted mean of its grades. The gate fails when, against the baseline, a case
that passed now fails, or the mean score (or one grader's mean) over the cases both runs share
drops by more than `max_score_drop`; without a baseline, when fewer than `min_pass_rate` of the
cases pass; and always when the set selects no case.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from statistics import fmean
from typing import Any

from mailagent.config import Settings
from mailagent.evals import candidate, snapshot
from mailagent.evals import classifiers as classifying
from mailagent.evals.cases import select_cases
from mailagent.evals.graders import Grade, Sample, grade_all
from mailagent.evals.replay import Replayed, customer_text, our_domains, replay
from mailagent.evals.sets import EvalSet, Gate
from mailagent.policy import Policy, load_policy
from mailagent.redact import redact
from mailagent.store import db, evalruns
from mailagent.store.models import EvalCase, EvalResult, EvalRun, now

Progress = Callable[[int, int], None]
APPROVED = ("approved", "executed")


@dataclass(frozen=True)
class Outcome:
    """One case replayed and graded."""

    case_id: int
    source: str
    score: float
    passed: bool
    grades: tuple[Grade, ...]
    reply: str = ""
    decision: str = ""
    rule: str = ""
    flags: tuple[str, ...] = ()
    proposals: tuple[dict[str, Any], ...] = ()
    labels: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    trace_id: str | None = None
    seconds: float = 0.0


@dataclass(frozen=True)
class Verdict:
    passed: bool
    reasons: tuple[str, ...]
    regressions: tuple[int, ...] = ()
    baseline_id: int | None = None


def sample_for(case: EvalCase, replayed: Replayed, settings: Settings) -> Sample:
    request, result = replayed.request, replayed.result
    return Sample(
        reply=replayed.reply, customer_text=customer_text(request), reference=case.reference,
        cited=tuple(result.draft.cited_articles) if result.draft else (),
        proposals=tuple(p.tool for p in result.proposals),
        expected_tools=tuple(a["tool"] for a in case.changes.get("actions", []) if a.get("state") in APPROVED),
        paused=replayed.paused,
        needs_human=replayed.facts.needs_human, decision=replayed.decision.decision,
        customer_addr=request.customer_addr, our_domains=our_domains(settings, request),
    )


async def _one(settings: Settings, policy: Policy, eval_set: EvalSet, case: EvalCase) -> Outcome:
    try:
        replayed = await replay(settings, policy, classifying.live(settings), snapshot.load(case.request))
    except Exception as exc:  # noqa: BLE001 - one broken case is a failed case, not a failed run
        return Outcome(case.id or 0, case.source, 0.0, False, (), error=f"{type(exc).__name__}: {exc}")
    graded = await grade_all(eval_set.graders, sample_for(case, replayed, settings))
    result = replayed.result
    return Outcome(case.id or 0, case.source, graded.score, graded.passed, graded.grades, redact(replayed.reply),
                   replayed.decision.decision, replayed.decision.rule, tuple(replayed.facts.flags),
                   tuple(replayed.proposals()), replayed.labels, result.error, result.trace_id, replayed.seconds)


async def execute(settings: Settings, policy: Policy, eval_set: EvalSet, cases: Sequence[EvalCase],
                  concurrency: int, progress: Progress | None = None) -> list[Outcome]:
    """Replay and grade every case, at most `concurrency` at once, in case order."""
    bound = asyncio.Semaphore(concurrency)
    done = 0

    async def bounded(case: EvalCase) -> Outcome:
        nonlocal done
        async with bound:
            outcome = await _one(settings, policy, eval_set, case)
        done += 1
        if progress:
            progress(done, len(cases))
        return outcome

    return list(await asyncio.gather(*(bounded(c) for c in cases)))


def _means(results: Sequence[Outcome | EvalResult], ids: set[int]) -> tuple[float | None, dict[str, float]]:
    chosen = [r for r in results if r.case_id in ids]
    if not chosen:
        return None, {}
    by_grader: dict[str, list[float]] = {}
    for r in chosen:
        for g in r.grades:
            name, score = (g.grader, g.score) if isinstance(g, Grade) else (g["grader"], g["score"])
            by_grader.setdefault(name, []).append(score)
    return fmean(r.score for r in chosen), {k: round(fmean(v), 4) for k, v in by_grader.items()}


def judge(outcomes: Sequence[Outcome], gate: Gate, baseline: EvalRun | None,
          before: Sequence[EvalResult]) -> Verdict:
    """The gate's verdict (see the module docstring)."""
    if not outcomes:
        return Verdict(False, ("the set selects no case: nothing was evaluated",), (), baseline.id if baseline else None)
    if baseline is None:
        rate = sum(o.passed for o in outcomes) / len(outcomes)
        if rate < gate.min_pass_rate:
            return Verdict(False, (f"{rate:.0%} of the cases pass, fewer than min_pass_rate = {gate.min_pass_rate:g}",))
        return Verdict(True, (f"{rate:.0%} of the cases pass (min_pass_rate = {gate.min_pass_rate:g})",))
    was = {r.case_id: r for r in before}
    shared = {o.case_id for o in outcomes} & set(was)
    reasons: list[str] = []
    regressions = tuple(o.case_id for o in outcomes if o.case_id in shared and was[o.case_id].passed and not o.passed)
    if regressions:
        reasons.append(f"{len(regressions)} case(s) passed in run {baseline.id} and fail now: "
                       f"{', '.join(map(str, regressions))}")
    now_mean, now_graders = _means(outcomes, shared)
    was_mean, was_graders = _means(before, shared)
    if now_mean is not None and was_mean is not None and was_mean - now_mean > gate.max_score_drop:
        reasons.append(f"the mean score fell from {was_mean:.3f} to {now_mean:.3f} (max_score_drop = "
                       f"{gate.max_score_drop:g})")
    for name in sorted(set(now_graders) & set(was_graders)):
        if was_graders[name] - now_graders[name] > gate.max_score_drop:
            reasons.append(f"grader {name} fell from {was_graders[name]:.3f} to {now_graders[name]:.3f}")
    if reasons:
        return Verdict(False, tuple(reasons), regressions, baseline.id)
    return Verdict(True, (f"no regression against run {baseline.id} ({len(shared)} shared case(s))",), (), baseline.id)


def baseline_run(url: str, set_name: str, which: str | None) -> EvalRun | None:
    """`--baseline`: a run id, or "last" (the newest finished run of the set)."""
    if which is None:
        return None
    with db.reading(url) as s:
        if which == "last":
            return evalruns.last_finished(s, set_name)
        if not which.isdigit() or (run := s.get(EvalRun, int(which))) is None:
            raise LookupError(f"no eval run {which!r} (give a run id, or last)")
        if run.state != "done":
            raise LookupError(f"eval run {which} did not finish: it cannot be a baseline")
        return run


def results_of(url: str, run_id: int) -> list[EvalResult]:
    with db.reading(url) as s:
        return evalruns.results(s, run_id)


@dataclass(frozen=True)
class Stored:
    run: EvalRun
    outcomes: tuple[Outcome, ...]
    verdict: Verdict


def run(live: Settings, eval_set: EvalSet, *, config_file: str | None = None, baseline: str | None = None,
        progress: Progress | None = None) -> Stored:
    """The whole `eval run`: returns the stored run, each case's outcome, and the verdict."""
    url = live.database.url
    tried = candidate.load(live, config_file) if config_file else live
    policy = load_policy(Path(tried.policy.directory))
    base = baseline_run(url, eval_set.name, baseline)
    with db.reading(url) as s:
        cases = select_cases(s, eval_set.select)
    with db.session(url) as s:
        row = EvalRun(set_name=eval_set.name, config=candidate.describe(tried, config_file) | {"policy_version": policy.version},
                      baseline_id=base.id if base else None)
        s.add(row)
    with candidate.workspace(live, tried) as settings:
        outcomes = asyncio.run(execute(settings, policy, eval_set, cases, live.evals.concurrency, progress))
    verdict = judge(outcomes, eval_set.gate, base, results_of(url, base.id) if base and base.id else [])
    mean, graders = _means(outcomes, {o.case_id for o in outcomes})
    with db.session(url) as s:
        stored = s.get(EvalRun, row.id)
        assert stored is not None
        stored.state, stored.finished_at, stored.cases = "done", now(), len(outcomes)
        stored.passed, stored.score, stored.scores = sum(o.passed for o in outcomes), mean, graders
        stored.gate = {"passed": verdict.passed, "reasons": list(verdict.reasons), "regressions": list(verdict.regressions)}
        for o in outcomes:
            s.add(EvalResult(run_id=stored.id, case_id=o.case_id, score=o.score, passed=o.passed,
                             grades=[g.to_dict() for g in o.grades], reply=o.reply, decision=o.decision, rule=o.rule,
                             flags=list(o.flags), proposals=list(o.proposals), labels=o.labels, error=o.error,
                             trace_id=o.trace_id, seconds=round(o.seconds, 3)))
    return Stored(stored, tuple(outcomes), verdict)
