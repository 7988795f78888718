"""The watcher: one IMAP IDLE connection per mailbox that asks for it, each enqueueing a poll the
moment mail arrives (and after every reconnect, to resync).

Every long-lived thread here is supervised: whatever it raises (an IMAP error it does not handle
itself, a broker that is down — `redis.exceptions.ConnectionError` is not an `OSError` —, a bug),
it is restarted after a backoff, and never dies for good. What each one is doing is written to
the database every `beat_seconds` (`watcher_health`), so `/healthz` in the web process can say
that a watcher is failing, or that the process running it is gone (its reports go stale).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from datetime import timedelta

from mailagent.config import Settings
from mailagent.mail.imap import IdleWatcher
from mailagent.store import health
from mailagent.store.models import WatcherHealth, now

log = logging.getLogger(__name__)

BEAT_SECONDS = 5.0
STALE_AFTER = timedelta(seconds=30)    # a report older than this: the process behind it is gone
_STEADY_SECONDS = 60.0                 # a run this long resets the backoff


class Supervised:
    """Runs `target` in a daemon thread until `stop` is set, restarting it after a failure (or an
    unexpected return) with a backoff doubling from `min_backoff` to `max_backoff`."""

    def __init__(self, name: str, target: Callable[[], None], stop: threading.Event, *,
                 min_backoff: float = 1.0, max_backoff: float = 60.0) -> None:
        self.name, self.target, self.stop = name, target, stop
        self.min_backoff, self.max_backoff = min(min_backoff, max_backoff), max_backoff
        self.state = "running"
        self.restarts = 0
        self.last_error: str | None = None
        self.last_error_at = None
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> Supervised:
        self.thread.start()
        return self

    def _run(self) -> None:
        backoff = self.min_backoff
        while not self.stop.is_set():
            self.state = "running"
            started = time.monotonic()
            try:
                self.target()
                if self.stop.is_set():
                    break
                error = "returned unexpectedly"
            except Exception as exc:  # noqa: BLE001 - anything: the thread must not die
                error = f"{type(exc).__name__}: {exc}"
            if time.monotonic() - started > _STEADY_SECONDS:
                backoff = self.min_backoff
            self.restarts += 1
            self.last_error, self.last_error_at, self.state = error, now(), "restarting"
            log.warning("%s failed (%s); restarting in %.0f s", self.name, error, backoff)
            self.stop.wait(backoff)
            backoff = min(backoff * 2, self.max_backoff)
        self.state = "stopped"

    def report(self, process: str) -> WatcherHealth:
        alive = self.thread.is_alive() or self.state == "stopped"
        return WatcherHealth(name=self.name, process=process, state=self.state if alive else "dead",
                             restarts=self.restarts, last_error=self.last_error, last_error_at=self.last_error_at,
                             beat_at=now())


def start(settings: Settings, poll: Callable[[str], None], stop: threading.Event, *,
          beat_seconds: float = BEAT_SECONDS, max_backoff: float = 60.0) -> list[threading.Thread]:
    """Start a supervised IDLE watcher per mailbox with `idle = true`, and the thread that reports
    their health; the threads (none when no mailbox asks for IDLE)."""
    watchers = []
    for name, mailbox in settings.mailboxes.items():
        if mailbox.imap is None or not mailbox.imap.idle:
            continue
        watcher = IdleWatcher(name, mailbox.imap, lambda name=name: poll(name), stop)
        watchers.append(Supervised(f"idle:{name}", watcher.run, stop, max_backoff=max_backoff).start())
    if not watchers:
        return []
    process = f"{socket.gethostname()}:{os.getpid()}"
    url = settings.database.url

    def beat() -> None:
        while True:
            health.report(url, [w.report(process) for w in watchers])
            if stop.wait(beat_seconds):
                for w in watchers:
                    w.thread.join(timeout=5)
                health.report(url, [w.report(process) for w in watchers])
                return

    reporter = Supervised("watch:health", beat, stop, max_backoff=max_backoff).start()
    return [w.thread for w in watchers] + [reporter.thread]


def status(settings: Settings) -> dict[str, dict[str, object]]:
    """What `/healthz` says about each IDLE watcher this configuration asks for: `ok` only when
    its process reported it running within `STALE_AFTER`."""
    names = {f"idle:{name}": name for name, m in settings.mailboxes.items() if m.imap is not None and m.imap.idle}
    if not names:
        return {}
    reports = health.read(settings.database.url, names)
    out: dict[str, dict[str, object]] = {}
    for key, mailbox in names.items():
        row = reports.get(key)
        if row is None:
            out[mailbox] = {"ok": False, "state": "not reported", "detail": "no watch process has reported it"}
            continue
        age = (now() - row.beat_at).total_seconds()
        state = row.state if age <= STALE_AFTER.total_seconds() else "stale"
        out[mailbox] = {"ok": state == "running", "state": state, "process": row.process, "restarts": row.restarts,
                        "last_error": row.last_error, "last_report_seconds_ago": round(age, 1)}
    return out
