"""DB-API access without SQLAlchemy, for short-lived processes (an MTA-piped `ingest`, the list
commands) and the few statements every ingest path shares.

Importing SQLAlchemy alone costs ~250 ms, most of such a process's life. The statements here are
written once, with `?` placeholders, for SQLite (`sqlite3`) and PostgreSQL (`psycopg`). A URL
this module does not open itself (another driver, in-memory SQLite, SQLite with URL options, a
file not created yet) gets a connection from the SQLAlchemy engine's pool instead. Values come
back as the ORM would give them (aware UTC datetimes, parsed JSON, booleans) on connections opened
here and on PostgreSQL; a pooled SQLite connection gives SQLite's raw text and integers.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

SQLITE_BUSY_SECONDS = 30
SQLITE_PRAGMAS = (f"PRAGMA busy_timeout={SQLITE_BUSY_SECONDS * 1000}", "PRAGMA synchronous=NORMAL",
                  "PRAGMA foreign_keys=ON")


def prepare_sqlite(dbapi: sqlite3.Connection) -> None:
    """What every SQLite connection of the system starts with (`db.engine` calls it too): WAL mode,
    the busy timeout, and the pragmas above.

    Several processes opening a new database at once (MTA deliveries to a fresh install) all
    switch it to WAL; SQLite answers some of them "database is locked" at once, without waiting
    for the busy timeout (each holds the shared lock the other needs). The switch is retried, for
    as long as the busy timeout, until the database is in WAL mode."""
    deadline = time.monotonic() + SQLITE_BUSY_SECONDS
    pause = 0.002
    while True:
        try:
            dbapi.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 0.1)
    for pragma in SQLITE_PRAGMAS:
        dbapi.execute(pragma)

sqlite3.register_converter("DATETIME", lambda b: datetime.fromisoformat(b.decode()).replace(tzinfo=UTC))
sqlite3.register_converter("JSON", json.loads)
sqlite3.register_converter("BOOLEAN", lambda b: b not in (b"0", b""))


class Conn:
    """A DB-API connection and its dialect; `execute` takes `?` placeholders on both."""

    def __init__(self, dbapi: Any, dialect: str) -> None:
        self.dbapi, self.dialect = dbapi, dialect

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        if self.dialect == "postgresql":
            sql = sql.replace("?", "%s")
        cursor = self.dbapi.cursor()
        cursor.execute(sql, tuple(params))
        return cursor

    def objects(self, sql: str, params: Sequence[Any] = ()) -> list[SimpleNamespace]:
        """Rows as objects with the columns as attributes (what the ORM's rows offer readers)."""
        cursor = self.execute(sql, params)
        names = [d[0] for d in cursor.description]
        return [SimpleNamespace(**dict(zip(names, row, strict=True))) for row in cursor.fetchall()]

    def stamp(self, value: datetime) -> Any:
        """A datetime as this dialect stores it (SQLAlchemy's format on SQLite: naive UTC text)."""
        if self.dialect == "sqlite":
            return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
        return value


def _native(url: str) -> Any | None:
    """A DB-API connection opened without SQLAlchemy, when the URL allows."""
    scheme, _, rest = url.partition("://")
    if scheme == "sqlite":
        path = rest[1:] if rest.startswith("/") else ""
        if not path or path == ":memory:" or "?" in path or not Path(path).is_file():
            return None                  # in-memory, URL options, or not created yet
        dbapi = sqlite3.connect(path, timeout=SQLITE_BUSY_SECONDS, isolation_level=None,
                                detect_types=sqlite3.PARSE_DECLTYPES)
        prepare_sqlite(dbapi)
        return dbapi
    if scheme in ("postgresql", "postgresql+psycopg"):
        import psycopg

        return psycopg.connect(urlsplit(url)._replace(scheme="postgresql").geturl())
    return None


class Opened:
    """A connection kept for many transactions (a long-running writer: closing the last SQLite
    connection checkpoints the WAL, far dearer than a commit). One thread uses it at a time."""

    def __init__(self, url: str) -> None:
        dbapi = _native(url)
        self._pooled = None
        if dbapi is None:
            from mailagent.store import db

            self._pooled = db.engine(url).raw_connection()
            dbapi = self._pooled.driver_connection
        self.conn = Conn(dbapi, "sqlite" if isinstance(dbapi, sqlite3.Connection) else "postgresql")

    @contextmanager
    def transaction(self, *, write: bool, durable: bool = False) -> Iterator[Conn]:
        """Committed when the block ends, rolled back if it raises. Writers on SQLite start with
        `BEGIN IMMEDIATE`, as in `db.session`; readers on PostgreSQL are READ ONLY, as in
        `db.reading`. `durable`: the commit is on disk when the block ends, even on SQLite (whose
        `synchronous=NORMAL` in WAL mode survives a crash of the process, not of the machine):
        for mail a sender forgets once it is told "stored"."""
        conn = self.conn
        try:
            if conn.dialect == "sqlite":
                conn.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
                conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            elif not write:
                conn.execute("SET TRANSACTION READ ONLY")
            yield conn
            conn.dbapi.commit()
        except BaseException:
            conn.dbapi.rollback()
            raise

    def close(self) -> None:
        (self._pooled or self.conn.dbapi).close()


@contextmanager
def connect(url: str, *, write: bool, durable: bool = False) -> Iterator[Conn]:
    """One transaction on a connection of its own (see `Opened.transaction`). A URL this module
    cannot open itself (another driver, in-memory SQLite, a file not created yet) gets a
    connection from the SQLAlchemy engine's pool."""
    opened = Opened(url)
    try:
        with opened.transaction(write=write, durable=durable) as conn:
            yield conn
    finally:
        opened.close()


def is_storage_error(exc: BaseException) -> bool:
    """Whether `exc` says the database could not be reached or refused: an error of a driver, or
    of SQLAlchemy, that this process loaded (checked without importing either)."""
    kinds: list[type[BaseException]] = [sqlite3.Error]
    for module, name in (("psycopg", "Error"), ("sqlalchemy.exc", "SQLAlchemyError")):
        if module in sys.modules:
            kinds.append(getattr(sys.modules[module], name))
    return isinstance(exc, tuple(kinds))


_UNAVAILABLE = (("sqlalchemy.exc", ("OperationalError", "InterfaceError")), ("sqlite3", ("OperationalError",)),
                ("psycopg", ("OperationalError", "InterfaceError")))


def is_unavailable(exc: BaseException) -> bool:
    """Whether `exc` says the database cannot be used (down, wrong credentials, no such database):
    an operational error of SQLAlchemy or of a driver the short commands use directly, looked at
    only if that module is loaded already."""
    kinds = [getattr(sys.modules[module], name) for module, names in _UNAVAILABLE for name in names
             if module in sys.modules]
    return isinstance(exc, tuple(kinds))


def version(conn: Conn) -> str | None:
    """The schema revision Alembic recorded; None when there is none (an empty database)."""
    try:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    except Exception as exc:
        if "alembic_version" not in str(exc):
            raise
        conn.dbapi.rollback()            # PostgreSQL refuses anything more in a failed transaction
        return None
    return row[0] if row else None


MESSAGE_COLUMNS = ("dedup_key", "message_id", "sha256", "raw", "source", "mailbox", "imap_uid", "imap_uidvalidity",
                   "received_at", "state")
_CHUNK = 500                             # rows per INSERT: 5,000 parameters, under every limit


def insert_messages(conn: Conn, rows: list[dict[str, Any]]) -> list[int | None]:
    """Insert new messages, skipping those whose `dedup_key` is stored (their `duplicates` goes
    up instead); for each row, the new id or None."""
    inserted: dict[str, int] = {}
    placeholders = "(" + ", ".join("?" for _ in MESSAGE_COLUMNS) + ")"
    for start in range(0, len(rows), _CHUNK):
        chunk = rows[start:start + _CHUNK]
        sql = (f"INSERT INTO message ({', '.join(MESSAGE_COLUMNS)}) VALUES {', '.join([placeholders] * len(chunk))} "
               "ON CONFLICT (dedup_key) DO NOTHING RETURNING id, dedup_key")
        values = [conn.stamp(row[c]) if c == "received_at" else row[c] for row in chunk for c in MESSAGE_COLUMNS]
        inserted.update((key, ident) for ident, key in conn.execute(sql, values).fetchall())
    ids: list[int | None] = []
    for row in rows:
        ids.append(inserted.pop(str(row["dedup_key"]), None))
        if ids[-1] is None:
            conn.execute("UPDATE message SET duplicates = duplicates + 1 WHERE dedup_key = ?", [row["dedup_key"]])
    return ids
