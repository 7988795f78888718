"""The clock: polls every mailbox on its interval (whatever IDLE missed) and runs the sweeper.

Run exactly one clock; the actors are idempotent and the poll is leased per mailbox anyway, so an
accidental second clock costs work, not correctness."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from apscheduler.schedulers.base import BaseScheduler

from mailagent.config import Settings


def schedule(scheduler: BaseScheduler, settings: Settings, poll: Callable[[str], None],
             sweep: Callable[[], None]) -> None:
    for name, mailbox in settings.mailboxes.items():
        if mailbox.imap is not None:
            scheduler.add_job(poll, "interval", args=(name,), seconds=mailbox.imap.poll_interval_seconds,
                              id=f"poll:{name}", coalesce=True, max_instances=1, next_run_time=datetime.now(UTC))
    scheduler.add_job(sweep, "interval", seconds=settings.clock.sweep_interval_seconds, id="sweep",
                      coalesce=True, max_instances=1)
