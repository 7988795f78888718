"""The learning loop's records: eval cases made from reps' finals and flags, eval runs with each
case's result, and each day's live quality figures (what the review page plots)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from mailagent.store.models.base import now


class EvalCase(SQLModel, table=True):
    """A snapshot of one customer turn as the agent saw it, what it drafted, and what the rep made
    of it. It keeps its own copy of the turn (no foreign keys to mail), so it stays replayable
    after the conversation changes or is deleted. Text is redacted like traces."""

    __tablename__ = "eval_case"
    id: int | None = Field(default=None, primary_key=True)
    origin: str = Field(unique=True)                # "feedback:12", "flag:draft:7": one case per origin
    source: str = Field(index=True)                 # edit | approved | rejected | rep-written | flag
    state: str = Field(default="new", index=True)   # new | accepted | dropped
    conversation_id: int | None = Field(default=None, index=True)
    draft_id: int | None = None
    feedback_id: int | None = Field(default=None, index=True)
    request: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    draft: str = ""                                 # what the agent wrote
    draft_meta: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    reference: str | None = None                    # the rep's final; None for rejections, most flags
    changes: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    tags: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    reviewer: str = ""
    note: str = ""                                  # a rejection's reason, a flag's note
    rep_at: datetime                                # when the rep sent the final or flagged it
    created_at: datetime = Field(default_factory=now)
    curated_by: str | None = None
    curated_at: datetime | None = None
    suggested: bool = Field(default=False, index=True)  # looked at for a knowledge suggestion


class EvalRun(SQLModel, table=True):
    """One `mailagent eval run`: the set, the config it replayed against, and the verdict."""

    __tablename__ = "eval_run"
    id: int | None = Field(default=None, primary_key=True)
    set_name: str = Field(index=True)
    config: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    baseline_id: int | None = None
    state: str = "running"                          # running | done
    cases: int = 0
    passed: int = 0
    score: float | None = None                      # mean case score, 0..1
    scores: dict[str, float] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    gate: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    started_at: datetime = Field(default_factory=now)
    finished_at: datetime | None = None


class EvalResult(SQLModel, table=True):
    """One case replayed and graded in one run."""

    __tablename__ = "eval_result"
    __table_args__ = (UniqueConstraint("run_id", "case_id"),)
    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="eval_run.id", index=True)
    case_id: int = Field(foreign_key="eval_case.id")
    score: float = 0.0
    passed: bool = False
    grades: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    reply: str = ""
    decision: str = ""
    rule: str = ""
    flags: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    proposals: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    labels: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    error: str | None = None
    trace_id: str | None = None
    seconds: float = 0.0


class QualityDaily(SQLModel, table=True):
    """One live figure for one day (UTC): auto-send rate, approval without edit, edit distance,
    grader scores, classifier label shares, seconds from a rep's final to its eval case."""

    __tablename__ = "quality_daily"
    day: date = Field(primary_key=True)
    name: str = Field(primary_key=True)
    value: float
    count: int = 0                                  # how many drafts, reviews or cases it is over
    updated_at: datetime = Field(default_factory=now)
