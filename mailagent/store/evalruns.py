"""Eval runs and their per-case results as `mailagent eval run` compares them (models/evals.py;
the quality page's reads of runs are in `quality.py`)."""

from __future__ import annotations

from sqlmodel import Session, col, select

from mailagent.store.models import EvalResult, EvalRun


def last_finished(s: Session, set_name: str) -> EvalRun | None:
    """The newest run of the set that finished: `--baseline last`."""
    return s.exec(select(EvalRun).where(EvalRun.set_name == set_name, EvalRun.state == "done")
                  .order_by(col(EvalRun.id).desc())).first()


def results(s: Session, run_id: int) -> list[EvalResult]:
    """A run's results, by case id."""
    return list(s.exec(select(EvalResult).where(EvalResult.run_id == run_id).order_by(col(EvalResult.case_id))))
