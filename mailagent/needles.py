"""Literal strings a pattern cannot match without, to skip the patterns a text cannot match.

The guardrails try some hundred patterns on every message and draft, and Python's regex engine
tries each of them at every position. Most patterns need a word ("ignore", "refund", "system")
that most mail does not contain: one `in` test on the text is far cheaper than the search. The
strings are read from the compiled pattern itself, so they never drift from it; a pattern where
none can be read (or only a short one) is always searched.

Only ASCII characters of the pattern become needles, and `fold` gives the text as they are looked
for in it: lowercase, plus the four other characters Python's case-insensitive matching takes for
an ASCII letter (`İ` and `ı` for i, `ſ` for s, the Kelvin sign for k). The pattern is read with the
`re` module's own parser (`re._parser`, Python 3.11 to 3.13). Pure, no I/O.
"""

from __future__ import annotations

import itertools
import re
from re import _constants as c  # type: ignore[attr-defined]
from re import _parser  # type: ignore[attr-defined]
from typing import Any

MIN_LENGTH = 2            # shorter needles are in nearly every text: the pattern is searched anyway
_MAX_ALTERNATIVES = 256   # a larger set of spellings costs more to test than it saves


Needles = frozenset[str]


def fold(text: str) -> str:
    """`text` as needles are looked for in it."""
    if text.isascii():
        return text.lower()
    folded = text.replace("\u0130", "i").lower()             # the Kelvin sign lowers to k itself
    return folded.replace("\u0131", "i").replace("\u017f", "s")


def may_match(needles: Needles | None, folded: str) -> bool:
    """False only when `folded` holds none of the needles, so the pattern cannot match it."""
    return needles is None or any(map(folded.__contains__, needles))


def needles(pattern: re.Pattern[str]) -> Needles | None:
    """Lowercase strings one of which every match of `pattern` contains, or None."""
    found = _required(_parser.parse(pattern.pattern, pattern.flags))
    return found if found and min(map(len, found)) >= MIN_LENGTH else None


def _required(items: Any) -> Needles | None:
    """What a sequence requires: its best run of exact items, or the best requirement of one item."""
    candidates: list[Needles] = []
    run: Needles | None = None
    for op, av in items:
        exact = _exact(op, av)
        if exact is not None:
            run = exact if run is None else _product(run, exact)
            if run is not None:
                candidates.append(run)
            continue
        run = None
        inner = _inner(op, av)
        if inner is not None:
            candidates.append(inner)
    return max(candidates, key=lambda s: (min(map(len, s)), -len(s)), default=None)


def _exact(op: Any, av: Any) -> Needles | None:
    """The strings an item always matches exactly (case aside), or None."""
    if op is c.LITERAL:
        return frozenset({chr(av).lower()}) if av < 128 else None   # see `fold`: only ASCII letters
    if op is c.IN:
        if any(o is not c.LITERAL or a >= 128 for o, a in av):
            return None
        return frozenset(chr(a).lower() for _, a in av)
    if op is c.SUBPATTERN:
        return _sequence(av[3])
    if op is c.BRANCH:
        alternatives = [_sequence(branch) for branch in av[1]]
        if any(a is None for a in alternatives):
            return None
        return _limit(frozenset().union(*alternatives))  # type: ignore[arg-type]
    return None


def _sequence(items: Any) -> Needles | None:
    """The strings a whole sequence matches exactly, or None."""
    result: Needles | None = frozenset({""})
    for op, av in items:
        exact = _exact(op, av)
        result = None if exact is None or result is None else _product(result, exact)
        if result is None:
            return None
    return result


def _inner(op: Any, av: Any) -> Needles | None:
    """What an item that matches no fixed string still requires."""
    if op is c.SUBPATTERN:
        return _required(av[3])
    if op is c.ATOMIC_GROUP:
        return _required(av)
    if op in (c.MAX_REPEAT, c.MIN_REPEAT, c.POSSESSIVE_REPEAT):
        low, _, item = av
        return _required(item) if low >= 1 else None
    if op is c.BRANCH:
        alternatives = [_required(branch) for branch in av[1]]
        if any(a is None for a in alternatives):
            return None
        return _limit(frozenset().union(*alternatives))  # type: ignore[arg-type]
    return None          # lookarounds, anchors, classes, any character: nothing required


def _product(left: Needles, right: Needles) -> Needles | None:
    return _limit(frozenset(a + b for a, b in itertools.product(left, right)))


def _limit(strings: Needles) -> Needles | None:
    return strings if len(strings) <= _MAX_ALTERNATIVES else None
