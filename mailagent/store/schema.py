"""The schema: Alembic migrations, applied by `mailagent db upgrade`, and to an empty database on
first use.

Checking the version is a one-row query in plain SQL (`store.plain`): a short command pays
neither for SQLAlchemy nor for Alembic unless a migration must run.
Migration files are named `NNNN_what.py` with revision `NNNN`, in order, so the newest file
names the version this code needs. Concurrent first use (several MTA-piped `ingest` processes on
a new database) is serialized by a lock: PostgreSQL's advisory lock, a lock file next to a SQLite
database."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING

from mailagent.store import plain

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

MIGRATIONS = Path(str(files("mailagent.store") / "migrations"))   # package data, as config.DATA
_LOCK_ID = 0x6D61696C       # "mail": the advisory lock key on PostgreSQL


class SchemaError(RuntimeError):
    """The database is not at the schema this code expects."""


def head() -> str:
    """The revision this code needs: the newest migration file's number."""
    return max(p.name[:4] for p in (MIGRATIONS / "versions").glob("[0-9][0-9][0-9][0-9]_*.py"))


def current(url: str) -> str | None:
    """The database's revision; None for an empty database."""
    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError, ProgrammingError

    from mailagent.store.db import engine

    try:
        with engine(url).connect() as conn:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except (OperationalError, ProgrammingError) as exc:
        if "alembic_version" in str(exc):
            return None              # no such table: nothing was ever migrated here
        raise


def alembic_config(url: str) -> AlembicConfig:
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str) -> None:
    """Bring the schema to the newest migration (idempotent; one process at a time)."""
    with _migrating(url):
        _upgrade_locked(url)


def _upgrade_locked(url: str) -> None:
    from alembic import command

    if current(url) != head():
        command.upgrade(alembic_config(url), "head")


_demo_ready: set[str] = set()


def demo_tables(url: str) -> None:
    """Create the demo backend's tables where missing: their own metadata, apart from the
    migrated schema (see `store.models.demo`); serialized like a migration."""
    if url in _demo_ready:
        return
    from mailagent.store.db import engine
    from mailagent.store.models.demo import DemoTable

    with _migrating(url):
        DemoTable.metadata.create_all(engine(url))
    _demo_ready.add(url)


def ensure_schema(url: str) -> None:
    """Create the schema in an empty database; refuse an old one (upgrading is an operator's
    decision: `mailagent db upgrade`). The first look is plain SQL; anything but the newest
    version is looked at again under the migration lock: another process may be creating the
    schema right now (its first migrations are already recorded), and waiting for it is the answer."""
    with plain.connect(url, write=False) as conn:
        if plain.version(conn) == head():
            return
    with _migrating(url):
        found = current(url)
        if found is None:
            _upgrade_locked(url)
        elif found != head():
            from mailagent.store.db import safe_url

            raise SchemaError(f"the database {safe_url(url)} is at schema {found}, this version needs "
                              f"{head()}: run `mailagent db upgrade`")


@contextmanager
def _migrating(url: str) -> Iterator[None]:
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    from mailagent.store.db import engine

    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        with engine(url).connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _LOCK_ID})
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _LOCK_ID})
                conn.commit()
        return
    database = parsed.database
    if not database or database == ":memory:":
        yield
        return
    lock = Path(database).with_name(Path(database).name + ".migrate-lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
