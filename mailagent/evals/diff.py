"""What a rep changed in a draft: edit distance, facts added and removed, tone, actions. Stored
with each eval case (and summed into the daily figures). Pure, no I/O."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from mailagent.evals import facts
from mailagent.evals.tone import tone

MAX_WORDS = 3000             # beyond this, distance is computed on the first MAX_WORDS words
_TOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.casefold())[:MAX_WORDS]


def edit_distance(a: Sequence[str], b: Sequence[str]) -> int:
    """Levenshtein distance between two token sequences (words and punctuation)."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, left in enumerate(a, start=1):
        current = [i]
        for j, right in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (left != right)))
        previous = current
    return previous[-1]


def similarity(a: str, b: str) -> float:
    """1 - normalised word edit distance: 1.0 identical, 0.0 nothing in common."""
    left, right = tokens(a), tokens(b)
    longest = max(len(left), len(right))
    return 1.0 if longest == 0 else round(1 - edit_distance(left, right) / longest, 3)


def changes(draft: str, final: str | None, actions: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """The JSON stored with a case. `final` is None for a rejection (nothing was sent)."""
    out: dict[str, Any] = {"actions": list(actions), "tone_draft": tone(draft).score}
    if final is None:
        return out
    left, right = tokens(draft), tokens(final)
    out.update({
        "edit_distance": edit_distance(left, right),
        "similarity": similarity(draft, final),
        "facts_added": [f.text for f in facts.added(draft, final)],
        "facts_removed": [f.text for f in facts.removed(draft, final)],
        "tone_final": tone(final).score,
    })
    return out
