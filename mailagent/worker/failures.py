"""Failed attempts of this process's actors and agent runs, kept so that `mailagent run
--until-idle` ends saying what failed (one line each, and a non-zero exit) instead of handing the
same failing work to the workers again and again."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import dramatiq


def work_name(actor: str, *args: Any) -> str:
    """How a piece of work is named in reports: `save_to_sent(3)`."""
    return f"{actor}({', '.join(map(repr, args))})"


@dataclass
class Failure:
    work: str
    error: str
    attempts: int = 1

    def line(self) -> str:
        times = "" if self.attempts == 1 else f" ({self.attempts} attempts)"
        return f"{self.work}: {self.error}{times}"


class Failures(dramatiq.Middleware):
    """A dramatiq middleware: every message whose actor raised is recorded, by work name."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failed: dict[str, Failure] = {}

    def after_process_message(self, broker: dramatiq.Broker, message: dramatiq.Message, *,
                              result: Any = None, exception: BaseException | None = None) -> None:
        if exception is not None:
            self.record(work_name(message.actor_name, *message.args), exception)

    def record(self, work: str, error: BaseException | str) -> None:
        text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        text = " ".join(text.split())
        with self._lock:
            if work in self._failed:
                self._failed[work].error = text
                self._failed[work].attempts += 1
            else:
                self._failed[work] = Failure(work, text)

    def __contains__(self, work: str) -> bool:
        with self._lock:
            return work in self._failed

    def clear(self) -> None:
        with self._lock:
            self._failed.clear()

    def report(self) -> list[Failure]:
        with self._lock:
            return list(self._failed.values())


def installed(broker: dramatiq.Broker) -> Failures:
    """The broker's `Failures` middleware, added on first use (one per broker)."""
    for middleware in broker.middleware:
        if isinstance(middleware, Failures):
            return middleware
    failures = Failures()
    broker.add_middleware(failures)
    return failures
