"""The periodic step of the learning loop (the `build_eval_cases` actor, every
`[evals] case_interval_seconds`): new reps' finals become eval cases, and the cases that add
knowledge become suggestions."""

from __future__ import annotations

from dataclasses import dataclass

from mailagent.config import Settings
from mailagent.evals import cases, suggestions


@dataclass(frozen=True)
class Built:
    cases: int
    suggestions: int


def build(settings: Settings) -> Built:
    """Idempotent: each Feedback row makes one case, each case is looked at once for knowledge."""
    made = cases.build(settings)
    return Built(made, suggestions.propose(settings))
