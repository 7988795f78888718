"""TOML files written by ops (config, policies): load them, and turn validation errors into
messages that name the file, the line and the key, so a typo stops startup with a clear pointer."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

_TABLE = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"""^\s*((?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*'))*)\s*=""")
_AT_LINE = re.compile(r"\(at line (\d+), column \d+\)")

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    """One thing wrong in one file."""

    file: str
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class FileError(Exception):
    """A TOML file that cannot be used; carries every problem found, not just the first."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


def read(path: Path) -> tuple[str, dict[str, Any]]:
    """The file's text and its parsed TOML; syntax errors become a `FileError` with the line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise FileError([Problem(str(path), None, "", f"cannot read: {exc.strerror or exc}")]) from exc
    except UnicodeDecodeError as exc:
        raise FileError([Problem(str(path), None, "", f"not UTF-8 text: {exc}")]) from exc
    try:
        return text, tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = _AT_LINE.search(str(exc))
        message = _AT_LINE.sub("", str(exc)).strip()
        line = int(match.group(1)) if match else None
        raise FileError([Problem(str(path), line, "", f"TOML syntax error: {message}")]) from exc


def _split_key(dotted: str) -> list[str]:
    return [part.strip().strip("\"'") for part in re.findall(r"""[A-Za-z0-9_-]+|"[^"]*"|'[^']*'""", dotted)]


def key_lines(text: str) -> dict[Loc, int]:
    """Map each table and key path in a TOML text to its line number (1-based).

    tomllib keeps no positions, so this reads the lines the way a person does: table headers set
    the current path (arrays of tables count up an index), `key =` lines add to it."""
    lines: dict[Loc, int] = {}
    array_counts: dict[Loc, int] = {}
    table: Loc = ()
    for number, line in enumerate(text.splitlines(), start=1):
        if match := _TABLE.match(line):
            path: Loc = tuple(_split_key(match.group(2)))
            if match.group(1) == "[[":
                index = array_counts.get(path, -1) + 1
                array_counts[path] = index
                path = (*path, index)
            table = path
            lines.setdefault(table, number)
        elif match := _KEY.match(line):
            lines.setdefault((*table, *_split_key(match.group(1))), number)
    return lines


def line_of(lines: dict[Loc, int], loc: Loc) -> int | None:
    """The line of the longest known prefix of `loc` (an inline table's key maps to its line)."""
    for end in range(len(loc), 0, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def dotted(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _describe(error: dict[str, Any]) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    value = error.get("input")
    got = f", got {value!r}" if not isinstance(value, dict | list) else ""
    return f"{error['msg'][0].lower()}{error['msg'][1:]}{got}"


def problems_from(file: str, text: str, exc: ValidationError, *, prefix: Loc = ()) -> list[Problem]:
    """Pydantic errors as `Problem`s with lines looked up in the file text."""
    lines = key_lines(text)
    out = []
    for error in exc.errors():
        loc = (*prefix, *(part for part in error["loc"] if not str(part).startswith("function-") and part != "[key]"))
        out.append(Problem(file, line_of(lines, loc), dotted(loc), _describe(error)))
    return out
