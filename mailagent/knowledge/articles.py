"""Knowledge articles are Markdown files with a small front matter:

    ---
    title: How to reset your password
    tags: [account, password]
    locale: en
    updated: 2026-09-14
    ---
    The body, in Markdown.

People write these files by hand, so reading them checks every file and reports every problem
with its line, the way `tomlfile` does for config: one run shows all the typos at once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from mailagent.intents import INTENTS
from mailagent.tomlfile import FileError, Problem

LOCALES = ("en", "de", "es")
_KEYS = ("title", "tags", "locale", "updated", "intent")
_REQUIRED = ("title", "locale")
_FENCE = "---"


@dataclass(frozen=True)
class ArticleFile:
    """One valid article file."""

    id: str                     # file name without ".md", e.g. "password-reset.en"
    title: str
    tags: tuple[str, ...]
    locale: str
    updated: str                # YYYY-MM-DD, or "" when the front matter has none
    body: str
    path: Path
    sha256: str                 # of the file bytes: tells a sync whether the file changed
    intent: str = ""            # the customer intent the article answers (see policy intents)


def read_articles(directory: Path) -> list[ArticleFile]:
    """Every `*.md` file in `directory`, sorted by id; a `FileError` lists the problems of all bad files."""
    if not directory.is_dir():
        raise FileError([Problem(str(directory), None, "", "not a directory")])
    articles: list[ArticleFile] = []
    problems: list[Problem] = []
    for path in sorted(directory.glob("*.md")):
        try:
            articles.append(read_article(path))
        except FileError as exc:
            problems += exc.problems
    if problems:
        raise FileError(problems)
    return articles


def read_article(path: Path) -> ArticleFile:
    """One article file; a `FileError` lists all its problems."""
    file = str(path)
    try:
        data = path.read_bytes()
        lines = data.decode("utf-8-sig").splitlines()
    except OSError as exc:
        raise FileError([Problem(file, None, "", f"cannot read: {exc.strerror or exc}")]) from exc
    except UnicodeDecodeError as exc:
        raise FileError([Problem(file, None, "", f"not UTF-8 text: {exc}")]) from exc
    if not lines or lines[0].strip() != _FENCE:
        raise FileError([Problem(file, 1, "", "missing front matter: the file must start with a --- line")])
    end = next((n for n in range(1, len(lines)) if lines[n].strip() == _FENCE), None)
    if end is None:
        raise FileError([Problem(file, 1, "", "the front matter has no closing --- line")])

    fields, problems = _fields(file, lines[1:end])
    problems += [Problem(file, 1, key, "required key is missing") for key in _REQUIRED if key not in fields]
    for key, (line, value) in fields.items():
        if message := _check(key, value, path):
            problems.append(Problem(file, line, key, message))
    body = "\n".join(lines[end + 1:]).strip()
    if not body:
        problems.append(Problem(file, end + 1, "", "the article has no body below the front matter"))
    if problems:
        raise FileError(problems)
    values = {key: value for key, (_, value) in fields.items()}
    return ArticleFile(id=path.stem, title=values["title"], tags=_tags(values.get("tags", "[]")),
                       locale=values["locale"], updated=values.get("updated", ""), body=body, path=path,
                       sha256=hashlib.sha256(data).hexdigest(), intent=values.get("intent", ""))


def _fields(file: str, lines: list[str]) -> tuple[dict[str, tuple[int, str]], list[Problem]]:
    """The front matter's `key: value` lines as {key: (line number, value)}, and what is wrong
    with the lines themselves."""
    fields: dict[str, tuple[int, str]] = {}
    problems: list[Problem] = []
    for number, line in enumerate(lines, start=2):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, colon, value = line.partition(":")
        key = key.strip()
        if not colon or not key:
            problems.append(Problem(file, number, "", "expected `key: value`"))
        elif key not in _KEYS:
            problems.append(Problem(file, number, key, f"unknown key (known: {', '.join(_KEYS)})"))
        elif key in fields:
            problems.append(Problem(file, number, key, f"duplicate key (first on line {fields[key][0]})"))
        else:
            fields[key] = (number, _unquote(value.strip()))
    return fields, problems


def _check(key: str, value: str, path: Path) -> str | None:
    """What is wrong with one value, if anything."""
    if key == "title" and not value:
        return "must not be empty"
    if key == "tags" and not (value.startswith("[") and value.endswith("]")):
        return f"expected a list like [billing, invoices], got {value!r}"
    if key == "locale":
        named = path.stem.rpartition(".")[2]         # "password-reset.en" -> "en"
        if value not in LOCALES:
            return f"must be one of {', '.join(LOCALES)}, got {value!r}"
        if named in LOCALES and named != value:
            return f"{value!r} does not match the file name (*.{named}.md)"
    if key == "intent" and value not in INTENTS:
        return f"must be one of {', '.join(INTENTS)}, got {value!r}"
    if key == "updated" and not _is_date(value):
        return f"expected a date like 2026-09-14, got {value!r}"
    return None


def _tags(value: str) -> tuple[str, ...]:
    return tuple(tag for item in value[1:-1].split(",") if (tag := _unquote(item.strip())))


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def _is_date(value: str) -> bool:
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return len(value) == 10             # fromisoformat also takes "20260914"
