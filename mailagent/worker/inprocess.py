"""Everything in one process: worker threads, clock and IDLE watchers on an in-process broker.

For a first run on one machine and for batch use. `until_idle` does all work that is runnable now
and returns what failed; replies waiting for a retry stay queued in the database for the next run,
and so does work that keeps failing: it is tried a bounded number of times per run, never again
and again."""

from __future__ import annotations

import logging
import signal
import threading
from collections import Counter
from datetime import timedelta
from types import FrameType

import dramatiq
from apscheduler.schedulers.background import BackgroundScheduler

from mailagent import config
from mailagent.config import Settings
from mailagent.pipeline import sweeper
from mailagent.worker import clock, watch
from mailagent.worker.broker import DELIVERY, QUEUES, message
from mailagent.worker.failures import Failure, installed, work_name

log = logging.getLogger(__name__)


class Pool(dramatiq.Worker):
    """A dramatiq worker for some of the queues, one of several on the same broker.

    `dramatiq.Worker.start` registers a middleware on the broker that opens a consumer for each
    queue declared, then and later. A second worker on the broker registers a second one (dramatiq
    warns of a middleware "of the same type twice"), and a stopped worker's stays on the broker,
    which lives as long as the process (a later run, the tests), ready to open consumers that
    nothing would work off. Every queue is declared when the actors are imported, before a pool
    starts, so a pool opens consumers for its queues itself and registers nothing."""

    def start(self) -> None:
        self.broker.emit_before("worker_boot", self)
        for queue in self.broker.get_declared_queues():
            self._add_consumer(queue)
        for queue in self.broker.get_declared_delay_queues():
            self._add_consumer(queue, delay=True)
        for _ in range(self.worker_threads):
            self._add_worker()
        self.broker.emit_after("worker_boot", self)


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
        self.failures = installed(actors.broker)
        actors.runs().on_failure = self.failures.record
        others = set(QUEUES.values()) - {DELIVERY}
        # Two pools: a stalled SMTP server holds delivery threads only, never drafting's.
        self.workers = [Pool(actors.broker, queues=others, worker_threads=settings.worker.threads),
                        Pool(actors.broker, queues={DELIVERY}, worker_threads=settings.outbox.threads)]

    def __enter__(self) -> InProcess:
        for worker in self.workers:
            worker.start()
        return self

    def __exit__(self, *_: object) -> None:
        for worker in self.workers:
            worker.stop()
        # Retries still waiting in the delay queues end with this run (the in-process broker is
        # memory): the sweeper finds their rows next time, and a later run in the same process
        # (tests, the demo) starts clean.
        self.actors.broker.flush_all()

    def poll_all(self) -> None:
        for name, mailbox in self.settings.mailboxes.items():
            if mailbox.imap is not None:
                self.actors.poll_mailbox.send(name)

    def until_idle(self) -> list[Failure]:
        """Poll once, then process until no runnable work is left (including work the sweeper
        finds: messages stored by `ingest`, replies due for delivery); what failed, one entry per
        piece of work. The sweeper hands a piece of work on at most `[worker] max_attempts` + 1
        times in a run, as many as the stages' own bounded attempts need to end a failing draft
        or message in a visible state; work still due after that is reported, not retried forever."""
        self.failures.clear()
        passes: Counter[str] = Counter()
        limit = self.settings.worker.max_attempts + 1
        self.poll_all()
        while True:
            self._settle()
            due = {work_name(actor, ref): (actor, ref)
                   for actor, refs in sweeper.find_due(self.settings, timedelta(0)).work() for ref in refs}
            work = [(name, found) for name, found in due.items() if passes[name] < limit]
            if not work:
                self._settle()
                for name in due:
                    if name not in self.failures:
                        self.failures.record(name, f"still due after {limit} passes in this run")
                return self.failures.report()
            for name, (actor, ref) in work:
                passes[name] += 1
                self.actors.broker.enqueue(message(actor, ref))

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
