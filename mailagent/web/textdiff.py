"""A word diff for people: what a rep changed in a draft, what a suggestion adds to an article.
Pure; the template shows each piece as text (never as markup) with its class."""

from __future__ import annotations

import re
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Literal

Op = Literal["same", "added", "removed"]
_PIECE = re.compile(r"\s+|\S+")


@dataclass(frozen=True)
class Piece:
    op: Op
    text: str


def word_diff(before: str, after: str) -> list[Piece]:
    """`before` turned into `after`, word by word (whitespace kept), adjacent pieces merged."""
    a, b = _PIECE.findall(before), _PIECE.findall(after)
    out: list[Piece] = []

    def put(op: Op, words: list[str]) -> None:
        if not words:
            return
        if out and out[-1].op == op:
            out[-1] = Piece(op, out[-1].text + "".join(words))
        else:
            out.append(Piece(op, "".join(words)))

    for tag, i1, i2, j1, j2 in SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag == "equal":
            put("same", a[i1:i2])
        else:
            put("removed", a[i1:i2])
            put("added", b[j1:j2])
    return out
