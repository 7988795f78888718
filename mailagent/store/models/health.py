"""What long-lived threads of other processes report about themselves, for `/healthz`."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from mailagent.store.models.base import now


class WatcherHealth(SQLModel, table=True):
    """One row per supervised thread (an IDLE watcher: `idle:<mailbox>`), rewritten every few
    seconds by the process that runs it. A row that stops being rewritten belongs to a process
    that died."""

    __tablename__ = "watcher_health"
    name: str = Field(primary_key=True)
    process: str = ""                               # host:pid
    state: str = "running"                          # running | restarting | stopped
    restarts: int = 0
    last_error: str | None = None
    last_error_at: datetime | None = None
    beat_at: datetime = Field(default_factory=now)
