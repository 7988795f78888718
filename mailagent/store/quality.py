"""The quality figures: what a day's live figures are computed from and where they are stored
(`evals/quality.py` computes them), and the reads for the quality plots (the review page's
metrics): each day's live figures and each eval run's scores, as plain dicts with stable field
names, oldest first.

Tables (migration 0011):

- `quality_daily` (day, name) -> value, count: one row per UTC day and figure, recomputed every
  `[evals] quality_interval_seconds` for today and yesterday. Names:
  `drafts` (decided drafts; value = count), `auto_send_rate` (auto-sent / decided),
  `approved_unedited_rate` (approved as written / reviewed by a rep), `edit_similarity` (mean
  1 - word edit distance of edited drafts), `edit_distance` (mean words changed),
  `grade:<tone|safety|language|promises>` (mean pre-send gate score of the day's drafts),
  `label:<classifier>:<label>` (share of the day's labelled drafts), `case_seconds` (mean seconds
  from a rep's final to its stored eval case; `case_seconds_max` the longest); `count` is how many
  drafts, reviews or cases the value is over.
- `eval_run`: one row per `mailagent eval run` (set, config, score, per-grader `scores`, gate
  verdict); `eval_result`: one row per case and run.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

from sqlalchemy import delete
from sqlmodel import Session, col, select

from mailagent.store import db
from mailagent.store.models import Draft, EvalCase, EvalRun, Feedback, QualityDaily


def decided_drafts(s: Session, start: datetime, end: datetime) -> list[Draft]:
    """Drafts the policy decided (sent, held or escalated) in [start, end)."""
    return list(s.exec(select(Draft).where(col(Draft.decided_at) >= start, col(Draft.decided_at) < end,
                                           col(Draft.decision).in_(["send", "hold", "escalate"]))).all())


def reviews(s: Session, start: datetime, end: datetime) -> list[Feedback]:
    """Reps' verdicts given in [start, end)."""
    return list(s.exec(select(Feedback).where(col(Feedback.created_at) >= start, col(Feedback.created_at) < end)).all())


def cases_from_reviews(s: Session, start: datetime, end: datetime) -> list[EvalCase]:
    """Eval cases made from reps' verdicts in [start, end) (flags are not timed)."""
    return list(s.exec(select(EvalCase).where(col(EvalCase.created_at) >= start, col(EvalCase.created_at) < end,
                                              col(EvalCase.feedback_id).is_not(None))).all())


def replace_day(s: Session, day: date, figures: Iterable[tuple[str, float, int]]) -> None:
    """Store a day's figures (name, value, count) in place of the ones it had."""
    s.execute(delete(QualityDaily).where(col(QualityDaily.day) == day))
    s.add_all(QualityDaily(day=day, name=name, value=round(value, 4), count=count) for name, value, count in figures)


def daily(url: str, *, since: date | None = None, names: list[str] | None = None) -> list[dict[str, Any]]:
    """`[{"day": "2026-12-01", "name": "auto_send_rate", "value": 0.31, "count": 212}, ...]`."""
    with db.reading(url) as s:
        query = select(QualityDaily).order_by(col(QualityDaily.day), col(QualityDaily.name))
        if since is not None:
            query = query.where(QualityDaily.day >= since)
        if names:
            query = query.where(col(QualityDaily.name).in_(names))
        return [{"day": row.day.isoformat(), "name": row.name, "value": row.value, "count": row.count}
                for row in s.exec(query)]


def run_row(run: EvalRun) -> dict[str, Any]:
    return {"id": run.id, "set": run.set_name, "state": run.state, "cases": run.cases, "passed": run.passed,
            "score": None if run.score is None else round(run.score, 4), "scores": run.scores,
            "gate_passed": run.gate.get("passed"), "gate_reasons": run.gate.get("reasons", []),
            "baseline_id": run.baseline_id, "model": run.config.get("model"),
            "prompt_version": run.config.get("prompt_version"), "policy_version": run.config.get("policy_version"),
            "config_file": run.config.get("file"), "started_at": run.started_at.isoformat(timespec="seconds"),
            "finished_at": run.finished_at.isoformat(timespec="seconds") if run.finished_at else None}


def eval_runs(url: str, *, set_name: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """The newest `limit` eval runs (of one set), oldest first: `run_row` fields."""
    with db.reading(url) as s:
        query = select(EvalRun).order_by(col(EvalRun.id).desc()).limit(limit)
        if set_name:
            query = query.where(EvalRun.set_name == set_name)
        return [run_row(r) for r in reversed(s.exec(query).all())]


def run_sets(url: str) -> list[str]:
    """The sets that have eval runs, the one run last first."""
    with db.reading(url) as s:
        rows = s.exec(select(EvalRun.set_name).order_by(col(EvalRun.id).desc())).all()
    return list(dict.fromkeys(rows))
