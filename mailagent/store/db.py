"""Engine and sessions. The database is the source of truth for every state in the system.

SQLite runs in WAL mode with a busy timeout, and every writing transaction starts with
`BEGIN IMMEDIATE`, so two writers never both read a stale snapshot and then collide on commit;
`reading` transactions start deferred and never wait for writers. PostgreSQL takes row locks
where a step must be serialized (see `lock`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Table, bindparam, event, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlmodel import Session, SQLModel, create_engine

from mailagent.store.models import Mutex
from mailagent.store.plain import SQLITE_BUSY_SECONDS, prepare_sqlite

# Only store/ imports SQLAlchemy: the rest names a transaction and the errors it may raise by these.
__all__ = ["DatabaseError", "IntegrityError", "Session", "dispose", "engine", "insert", "lock", "reading", "safe_url",
           "session"]
DatabaseError = SQLAlchemyError

_engines: dict[str, Engine] = {}
_readers: dict[str, Engine] = {}         # the same engines, with the read-only options


def engine(url: str) -> Engine:
    """One engine per URL per process (engines own connection pools)."""
    if url not in _engines:
        _engines[url] = _make_engine(url)
    return _engines[url]


def _make_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=40)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    eng = create_engine(url, connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_SECONDS})

    @event.listens_for(eng, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # let SQLAlchemy's BEGIN below take effect
        prepare_sqlite(dbapi_connection)

    @event.listens_for(eng, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get("read_only") else "BEGIN IMMEDIATE")

    return eng


def dispose(url: str | None = None) -> None:
    """Close every pool (tests, and forked worker processes), or only the one of `url` (a
    scratch database that is about to be deleted)."""
    for key in [url] if url is not None else list(_engines):
        if key in _engines:
            _engines.pop(key).dispose()
        _readers.pop(key, None)


@contextmanager
def session(url: str) -> Iterator[Session]:
    """One transaction: committed when the block ends, rolled back if it raises."""
    with Session(engine(url), expire_on_commit=False) as s, s.begin():
        yield s


@contextmanager
def reading(url: str) -> Iterator[Session]:
    """A read-only transaction. On SQLite it starts deferred, so readers never queue behind the
    writers' lock; on PostgreSQL it is declared READ ONLY."""
    with Session(_reader(url), expire_on_commit=False) as s, s.begin():
        yield s


def _reader(url: str) -> Engine:
    """`engine(url)` with the read-only options, made once (made per transaction, it cost a
    third of a short read)."""
    if url not in _readers:
        _readers[url] = engine(url).execution_options(read_only=True, postgresql_readonly=True)
    return _readers[url]


def insert(s: Session, target: type[SQLModel] | Table) -> Any:
    """The dialect's INSERT, which knows `on_conflict_do_nothing` on both SQLite and PostgreSQL."""
    dialect = s.get_bind().dialect.name
    return (pg_insert if dialect == "postgresql" else sqlite_insert)(target)


def lock(s: Session, name: str) -> None:
    """Serialize a step across processes until the transaction ends: a row lock on PostgreSQL;
    nothing to do on SQLite, whose `BEGIN IMMEDIATE` already serializes every writer."""
    if s.get_bind().dialect.name == "sqlite":
        return
    conn = s.connection()
    conn.execute(_MUTEX_ROW, {"name": name})
    conn.execute(_MUTEX_LOCK, {"name": name})


def safe_url(url: str) -> str:
    """The URL with any password hidden, for messages and logs."""
    return make_url(url).render_as_string(hide_password=True)


_mutex: Table = Mutex.__table__  # type: ignore[assignment]
_MUTEX_ROW = pg_insert(_mutex).values(name=bindparam("name")).on_conflict_do_nothing()
_MUTEX_LOCK = select(_mutex.c.name).where(_mutex.c.name == bindparam("name")).with_for_update()
