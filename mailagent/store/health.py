"""What `/healthz` reads: whether the database answers, and the health reports of long-lived
threads, written by the process that runs them (the database is what every process shares)."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import text
from sqlmodel import col, select

from mailagent.store import db
from mailagent.store.models import WatcherHealth


def report(url: str, rows: Iterable[WatcherHealth]) -> None:
    """Write (insert or replace) these reports in one transaction."""
    with db.session(url) as s:
        for row in rows:
            s.merge(row)


def read(url: str, names: Iterable[str]) -> dict[str, WatcherHealth]:
    with db.reading(url) as s:
        rows = s.exec(select(WatcherHealth).where(col(WatcherHealth.name).in_(list(names)))).all()
        for row in rows:
            s.expunge(row)
    return {row.name: row for row in rows}


def ping(url: str) -> None:
    """Raises unless the database answers (`/healthz`)."""
    with db.engine(url).connect() as conn:
        conn.execute(text("SELECT 1"))
