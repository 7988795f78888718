"""The clock: polls every mailbox on its interval (whatever IDLE missed), runs the sweeper, and
runs the learning loop's periodic steps (eval cases from reps' finals, daily quality figures).

Run exactly one clock; the actors are idempotent and the poll is leased per mailbox anyway, so an
accidental second clock costs work, not correctness."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from apscheduler.schedulers.base import BaseScheduler

from mailagent.config import Settings


def schedule(scheduler: BaseScheduler, settings: Settings, poll: Callable[[str], None],
             sweep: Callable[[], None], enqueue: Callable[[str], None]) -> None:
    """`enqueue(actor)` sends a message to an actor that takes no argument."""
    for name, mailbox in settings.mailboxes.items():
        if mailbox.imap is not None:
            scheduler.add_job(poll, "interval", args=(name,), seconds=mailbox.imap.poll_interval_seconds,
                              id=f"poll:{name}", coalesce=True, max_instances=1, next_run_time=datetime.now(UTC))
    scheduler.add_job(sweep, "interval", seconds=settings.clock.sweep_interval_seconds, id="sweep",
                      coalesce=True, max_instances=1)
    scheduler.add_job(enqueue, "interval", args=("build_eval_cases",), seconds=settings.evals.case_interval_seconds,
                      id="build_eval_cases", coalesce=True, max_instances=1)
    scheduler.add_job(enqueue, "interval", args=("record_quality",), seconds=settings.evals.quality_interval_seconds,
                      id="record_quality", coalesce=True, max_instances=1)
