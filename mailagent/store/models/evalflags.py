"""Conversations a rep flagged "add to eval set" (from the review page): the raw material of
eval cases. The evals engine turns each open flag into a case and fills in `eval_case_id` and
`handled_at`; until then the flag is open."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from mailagent.store.models.base import now


class EvalFlag(SQLModel, table=True):
    __tablename__ = "eval_flag"
    id: int | None = Field(default=None, primary_key=True)
    conversation_id: int = Field(foreign_key="conversation.id", index=True)
    draft_id: int | None = Field(default=None, foreign_key="draft.id")   # the draft the rep looked at
    note: str                                       # what the right answer is, or what went wrong
    flagged_by: str
    created_at: datetime = Field(default_factory=now)
    eval_case_id: int | None = None                 # set by the evals engine
    handled_at: datetime | None = Field(default=None, index=True)
