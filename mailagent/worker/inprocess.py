"""Everything in one process: worker threads, clock and IDLE watchers on an in-process broker.

For a first run on one machine and for batch use. `until_idle` does all work that is runnable now
and returns; replies waiting for a retry stay queued in the database for the next run."""

from __future__ import annotations

import logging
import signal
import threading
from datetime import timedelta
from types import FrameType

import dramatiq
from apscheduler.schedulers.background import BackgroundScheduler

from mailagent import config
from mailagent.config import Settings
from mailagent.pipeline import sweeper
from mailagent.worker import clock, watch
from mailagent.worker.broker import DELIVERY, QUEUES, enqueue_due

log = logging.getLogger(__name__)


class InProcess:
    """A dramatiq worker on the in-process broker, plus the clock and watchers when running."""

    def __init__(self, settings: Settings) -> None:
        if not settings.broker.in_process:
            settings = settings.model_copy(update={"broker": settings.broker.model_copy(update={"url": "memory://"})})
        config.use(settings)
        from mailagent.worker import (
            actors,  # declared on an in-process broker made from these settings
        )

        self.settings, self.actors = settings, actors
        others = set(QUEUES.values()) - {DELIVERY}
        # Two pools: a stalled SMTP server holds delivery threads only, never drafting's.
        self.workers = [dramatiq.Worker(actors.broker, queues=others, worker_threads=settings.worker.threads),
                        dramatiq.Worker(actors.broker, queues={DELIVERY}, worker_threads=settings.outbox.threads)]

    def __enter__(self) -> InProcess:
        for worker in self.workers:
            worker.start()
        return self

    def __exit__(self, *_: object) -> None:
        for worker in self.workers:
            worker.stop()

    def poll_all(self) -> None:
        for name, mailbox in self.settings.mailboxes.items():
            if mailbox.imap is not None:
                self.actors.poll_mailbox.send(name)

    def until_idle(self) -> None:
        """Poll once, then process until no runnable work is left (including work the sweeper
        finds: messages stored by `ingest`, replies due for delivery)."""
        self.poll_all()
        same, previous = 0, None
        while True:
            self._settle()
            due = sweeper.find_due(self.settings, timedelta(0))
            same = same + 1 if due == previous else 0
            if same > self.settings.worker.max_attempts + 1:
                # Every failing step ends in a visible state after bounded attempts; this only
                # guards against a step that neither progresses nor fails, so `run` still returns.
                log.error("work that makes no progress, left for the next run: %s", due)
                return
            previous = due
            if not enqueue_due(self.actors.broker, due):
                self._settle()
                return

    def _settle(self) -> None:
        """Wait until every queue is empty (not the delay queues: retries wait for the next run)
        and no agent run is in flight (a finished run may enqueue more)."""
        queues = [q for name, q in self.actors.broker.queues.items() if not name.endswith(".DQ")]
        while True:
            for q in queues:
                q.join()
            self.actors.runs().wait_idle()
            if not any(q.unfinished_tasks for q in queues):
                return

    def forever(self) -> None:
        """Run until SIGTERM or SIGINT, then finish in-flight work and return."""
        stop = threading.Event()

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            log.info("signal %s: finishing in-flight work", signum)
            stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        scheduler = BackgroundScheduler(timezone="UTC")
        clock.schedule(scheduler, self.settings, self.actors.poll_mailbox.send, self.actors.sweep.send,
                       lambda actor: getattr(self.actors, actor).send())
        scheduler.start()
        watchers = watch.start(self.settings, self.actors.poll_mailbox.send, stop)
        stop.wait()
        scheduler.shutdown(wait=True)
        for thread in watchers:
            thread.join(timeout=5)
        self._settle()
