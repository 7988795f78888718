"""The schema: Alembic migrations, applied by `mailagent db upgrade` (and to an empty database
on first use). Alembic is imported only here, and only when a migration must run."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from mailagent.store.db import engine, safe_url

_MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(url: str) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str) -> None:
    """Bring the schema to the newest migration (idempotent)."""
    command.upgrade(alembic_config(url), "head")


class SchemaError(RuntimeError):
    """The database is not at the schema this code expects."""


def ensure_schema(url: str) -> None:
    """Create the schema in an empty database; refuse an old one (upgrading is an operator's
    decision: `mailagent db upgrade`)."""
    with engine(url).connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    if current is None:
        upgrade(url)
        return
    head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    if current != head:
        raise SchemaError(f"the database {safe_url(url)} is at schema {current}, this version needs "
                          f"{head}: run `mailagent db upgrade`")


