"""Shared fixtures: real servers (Dovecot, aiosmtpd, PostgreSQL, Redis) and fresh databases."""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import text

from mailagent import config
from mailagent.config import Settings
from mailagent.store import db, schema

from .support.dovecot import PASSWORD, Dovecot, free_port
from .support.mails import MX
from .support.smtpd import SmtpServer

PG_ADMIN = os.environ.get("MAILAGENT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
PG_DB = f"mailagent_test_{os.getpid()}"
os.environ.setdefault("MAILAGENT_TEST_IMAP_PASSWORD", PASSWORD)


# --- databases ------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    schema.upgrade(f"sqlite:///{path}")
    db.dispose()                # closes the pool, so the WAL is checkpointed into the file we copy
    return path


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> Iterator[str]:
    path = tmp_path / "mailagent.db"
    shutil.copy(sqlite_template, path)
    yield f"sqlite:///{path}"
    db.dispose()


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{PG_DB}"')
        conn.execute(f'CREATE DATABASE "{PG_DB}"')
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{PG_DB}"
    schema.upgrade(url)
    yield url
    db.dispose()
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{PG_DB}" WITH (FORCE)')


@pytest.fixture
def pg_url(pg_database: str) -> Iterator[str]:
    with db.engine(pg_database).begin() as conn:
        tables = [r[0] for r in conn.execute(text(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'"))]
        conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
    yield pg_database


@pytest.fixture
def fresh_pg(tmp_path: Path) -> Iterator[str]:
    """An empty PostgreSQL database of this test's own (no schema at all), dropped afterwards."""
    name = f"mailagent_fresh_{os.getpid()}_{tmp_path.name[-20:].lower().replace('-', '_')}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    yield url
    db.dispose(url)
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def any_db_url(request: pytest.FixtureRequest) -> str:
    """Storage tests run against both engines."""
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")


# --- servers --------------------------------------------------------------------------------

def _open_folder(prefix: str) -> Path:
    """A fresh folder that servers' unprivileged users (nobody, postfix) may enter: not pytest's
    tmp_path, whose parents are 0700."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    root.chmod(0o755)
    return root


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    root = _open_folder("mailagent-dovecot-")         # Dovecot's mail processes run as nobody
    server = Dovecot(root, free_port(), users=400).start()
    yield server
    server.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def open_tmp() -> Iterator[Path]:
    """This test's folder for servers that drop privileges (Postfix, Dovecot), removed afterwards."""
    root = _open_folder("mailagent-test-")
    yield root
    shutil.rmtree(root, ignore_errors=True)


_users = itertools.count()


@pytest.fixture
def imap_user(dovecot: Dovecot) -> str:
    """A mailbox of one's own on the shared Dovecot."""
    return dovecot.user(next(_users))


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    server = SmtpServer().start()
    yield server
    server.stop()


# --- settings -------------------------------------------------------------------------------

def make_settings(url: str, *, imap: dict[str, Any] | None = None, smtp: dict[str, Any] | None = None,
                  **sections: Any) -> Settings:
    mailbox: dict[str, Any] = {"address": "support@example.com", "display_name": "Example Support"}
    if imap is not None:
        mailbox["imap"] = {"host": "127.0.0.1", "security": "none",
                           "password_env": "MAILAGENT_TEST_IMAP_PASSWORD", "idle": False, **imap}
    if smtp is not None:
        mailbox["smtp"] = {"host": "127.0.0.1", "security": "none", **smtp}
    ingest = {"trusted_authserv_ids": [MX, "mx1.nimbusnotes.example"], **sections.pop("ingest", {})}
    data = {"database": {"url": url}, "mailboxes": {"support": mailbox}, "ingest": ingest,
            "outbox": {"retry_base_seconds": 1}, **sections}
    return config.use(Settings.model_validate(data))


@pytest.fixture
def settings_for(dovecot: Dovecot, smtp_server: SmtpServer) -> Any:
    """`settings_for(url, user)`: a mailbox on the test Dovecot and SMTP servers."""

    def build(url: str, user: str | None = None, **imap: Any) -> Settings:
        return make_settings(
            url,
            imap=None if user is None else {"port": dovecot.port, "user": user, **imap},
            smtp={"port": smtp_server.port},
        )

    return build
