"""Hang guards for hostile input: super-linear work (regex backtracking, quadratic loops) shows
as CPU time far beyond what linear work takes. They count this process's CPU seconds, not wall
time, so a loaded machine does not trip them; speed itself is measured in bench/."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def cpu_under(seconds: float, what: str = "") -> Iterator[None]:
    """Fail if the block used `seconds` of CPU or more (set it ~10x what linear work takes)."""
    started = time.process_time()
    yield
    used = time.process_time() - started
    assert used < seconds, f"{what}: {used:.2f} s of CPU, a hang guard set at {seconds} s"
