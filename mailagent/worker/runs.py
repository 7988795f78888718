"""Agent runs as coroutines: one event loop per worker process, at most `[worker] inflight` runs
on it at once.

A drafting actor hands its stage over and returns: while a run waits on the model it holds no
thread, so one process keeps many in flight with a few actor threads, and model clients (with
their connection pools) live as long as the loop. An actor blocks only while every slot is busy,
which is the backpressure: a full process stops taking drafting messages and other processes get
them. What a run claims is leased in the database (see `pipeline.drafting`), so work a dead
process held is taken over, not lost.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from mailagent.agent import providers

log = logging.getLogger(__name__)
T = TypeVar("T")


class Runs:
    DEADLINE = 15 * 60      # seconds: a run that takes longer is cancelled (its lease then runs out)

    def __init__(self, inflight: int) -> None:
        self.loop = asyncio.new_event_loop()
        self._slots = threading.BoundedSemaphore(inflight)
        self._busy = 0
        self._idle = threading.Condition()
        self._thread = threading.Thread(target=self._serve, name="agent-runs", daemon=True)
        self._thread.start()
        self.on_failure: Callable[[str, BaseException], None] | None = None   # (work name, error)

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        providers.share_clients(self.loop)
        self.loop.run_forever()

    def start(self, run: Coroutine[Any, Any, T], then: Callable[[T], None], name: str = "agent run") -> None:
        """Run `run` on the loop (waiting for a free slot first); `then(result)` when it ends.
        `name` says which work it is when it fails."""
        self._slots.acquire()
        with self._idle:
            self._busy += 1
        future = asyncio.run_coroutine_threadsafe(asyncio.wait_for(run, self.DEADLINE), self.loop)
        future.add_done_callback(lambda done: self._finish(done, then, name))

    def _finish(self, done: concurrent.futures.Future[T], then: Callable[[T], None], name: str) -> None:
        try:
            then(done.result())
        except Exception as exc:  # noqa: BLE001 - the row stays leased and is retried after the lease
            log.exception("%s failed; its draft is taken over when its lease runs out", name)
            if self.on_failure is not None:
                self.on_failure(name, exc)
        finally:
            self._slots.release()
            with self._idle:
                self._busy -= 1
                self._idle.notify_all()

    @property
    def busy(self) -> int:
        return self._busy

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Until no run is in flight; False if `timeout` passed first."""
        with self._idle:
            return self._idle.wait_for(lambda: self._busy == 0, timeout)

    def stop(self) -> None:
        self.wait_idle()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
