"""Copying whole tables from one database to another: a replay's scratch database starts with the
live articles and demo backend data (`evals/candidate.py`)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlmodel import SQLModel, select

from mailagent.store import db


def copy_rows(source: str, target: str, models: Sequence[type[SQLModel]]) -> None:
    """Every row of each model's table, read in one transaction and written in one, in the order
    given (parents first, for the foreign keys)."""
    with db.reading(source) as s:
        tables = [(model, [row.model_dump() for row in s.exec(select(model))]) for model in models]
    with db.session(target) as s:
        for model, rows in tables:
            s.add_all(model(**row) for row in rows)
            s.flush()
