"""The pre-send gate: the graders that need no rep's reply, run on a draft before the policy
decides, so ops can hold drafts the graders dislike (`when = { grade.tone = "< 0.6" }`).

`grades` is pure: the pipeline calls it with the draft and the customer's message and puts the
scores in the policy facts (`Facts.grades`); eval runs call it on every replayed draft. The names
are the policy grammar's `GRADES`.
"""

from __future__ import annotations

from collections.abc import Sequence

from mailagent.agent.guardrails import ExecutedAction
from mailagent.evals.graders import (
    Grader,
    Language,
    NoSecrets,
    NoUnfulfilledPromise,
    Sample,
    Tone,
)

GATE: dict[str, Grader] = {"tone": Tone(), "safety": NoSecrets(), "language": Language(),
                           "promises": NoUnfulfilledPromise()}


def grades(reply: str, *, customer_text: str, customer_addr: str = "", our_domains: Sequence[str] = (),
           executed: Sequence[ExecutedAction] = ()) -> dict[str, float]:
    """Scores 0..1 by grade name; none for an empty draft (nothing to send, nothing to grade)."""
    if not reply.strip():
        return {}
    sample = Sample(reply=reply, customer_text=customer_text, customer_addr=customer_addr,
                    our_domains=tuple(our_domains), executed=tuple(executed))
    out = {}
    for name, grader in GATE.items():
        grade = grader.grade(sample)
        if grade is not None:
            out[name] = round(grade.score, 3)
    return out
