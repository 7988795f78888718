"""Load `policies/*.toml` into one `Policy`, report every problem with file, line and key, and
reload on change without a restart (keeping the last good policy when a new edit is broken).

Only the top-level `*.toml` files of the directory load, in name order; subfolders (`examples/`,
`tests/`) never do. Problems are `tomlfile.Problem`s, the project's one way of pointing at a line.
"""

from __future__ import annotations

import difflib
import hashlib
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from mailagent import tomlfile
from mailagent.policy.fixtures import fixture_problems
from mailagent.policy.model import (
    ActionRule,
    ActionWhen,
    BusinessHours,
    Defaults,
    Limits,
    Policy,
    PolicyFile,
    Rule,
    When,
)
from mailagent.tomlfile import FileError, Loc, Problem

log = logging.getLogger("mailagent.policy")

# pydantic speaks of Python types; the author of a TOML file wrote arrays and tables.
_TOML_WORDS = ((re.compile(r"\btuple\b"), "array"), (re.compile(r"a valid dictionary or instance of \w+"), "a table"))

# Which model a key belongs to, by its path without list indexes: for "did you mean" hints.
_TABLES: dict[tuple[str, ...], type[BaseModel]] = {
    (): PolicyFile, ("defaults",): Defaults, ("limits",): Limits, ("business_hours",): BusinessHours,
    ("rules",): Rule, ("rules", "when"): When, ("action_rules",): ActionRule, ("action_rules", "when"): ActionWhen,
}


@dataclass(frozen=True)
class _File:
    path: Path
    text: str
    data: dict[str, Any]
    doc: PolicyFile | None                      # None: the file has problems


def _rule_name(data: dict[str, Any], loc: Loc) -> str | None:
    if len(loc) >= 2 and loc[0] in ("rules", "action_rules") and isinstance(loc[1], int):
        rules = data.get(loc[0])
        if isinstance(rules, list) and loc[1] < len(rules) and isinstance(rules[loc[1]], dict):
            name = rules[loc[1]].get("name")
            return name if isinstance(name, str) else None
    return None


def _validation_problems(file: str, text: str, data: dict[str, Any], exc: ValidationError) -> list[Problem]:
    """`tomlfile.problems_from`, plus a "did you mean" for unknown keys and the rule's name."""
    lines = tomlfile.key_lines(text)
    out = []
    for problem, error in zip(tomlfile.problems_from(file, text, exc), exc.errors(), strict=True):
        loc = error["loc"]
        message = problem.message
        for python, toml in _TOML_WORDS:
            message = python.sub(toml, message)
        if error["type"] == "extra_forbidden":
            table = _TABLES.get(tuple(part for part in loc[:-1] if isinstance(part, str)))
            close = difflib.get_close_matches(str(loc[-1]), list(table.model_fields) if table else [], n=1)
            message += f", did you mean {close[0]!r}?" if close else ""
        if name := _rule_name(data, loc):
            message += f" (in rule {name!r})"
        line = problem.line or tomlfile.line_of(lines, (*loc, 0))    # an unknown [[array]] of tables
        out.append(replace(problem, line=line, message=message))
    return out


def _read(path: Path) -> tuple[_File | None, list[Problem]]:
    try:
        text, data = tomlfile.read(path)
    except FileError as exc:
        return None, exc.problems
    try:
        return _File(path, text, data, PolicyFile.model_validate(data)), []
    except ValidationError as exc:
        return _File(path, text, data, None), _validation_problems(str(path), text, data, exc)


def _raw_rules(data: dict[str, Any], section: str) -> list[tuple[int, dict[str, Any]]]:
    rules = data.get(section)
    return [(i, r) for i, r in enumerate(rules) if isinstance(r, dict)] if isinstance(rules, list) else []


def _across(files: list[_File]) -> tuple[dict[str, str], list[Problem]]:
    """Where each rule is, and what no single file shows: duplicate names, `in_business_hours`
    without `[business_hours]`. Read from the raw tables, so these show even beside other problems."""
    has_hours = any(isinstance(f.data.get("business_hours"), dict) for f in files)
    origins: dict[str, str] = {}
    problems: list[Problem] = []
    for f in files:
        lines = tomlfile.key_lines(f.text)
        for section in ("rules", "action_rules"):
            for index, rule in _raw_rules(f.data, section):
                name = rule.get("name")
                if isinstance(name, str):
                    line = tomlfile.line_of(lines, (section, index, "name"))
                    if name in origins:
                        problems.append(Problem(str(f.path), line, f"{section}[{index}].name",
                                                f"duplicate rule name {name!r}: already used at {origins[name]}"))
                    else:
                        origins[name] = f"{f.path}:{line}"
                when = rule.get("when")
                if section == "rules" and isinstance(when, dict) and "in_business_hours" in when and not has_hours:
                    loc = (section, index, "when", "in_business_hours")
                    problems.append(Problem(str(f.path), tomlfile.line_of(lines, loc), tomlfile.dotted(loc),
                                            "needs a [business_hours] table in one of the policy files"
                                            + (f" (in rule {name!r})" if isinstance(name, str) else "")))
    return origins, problems


def _set(table: BaseModel | None) -> dict[str, Any]:
    """Only the keys a file wrote, so a later file overrides exactly those."""
    return {key: getattr(table, key) for key in table.model_fields_set} if table else {}


def _merge(files: list[_File], docs: list[PolicyFile], origins: dict[str, str]) -> Policy:
    """One policy from valid files, in order."""
    digest = hashlib.sha256()
    for f in files:
        digest.update(f"{f.path.name}\0{f.text}\0".encode())
    return Policy(
        defaults=Defaults(**{k: v for doc in docs for k, v in _set(doc.defaults).items()}),
        rules=tuple(rule for doc in docs for rule in doc.rules),
        action_rules=tuple(rule for doc in docs for rule in doc.action_rules),
        limits=Limits(**{k: v for doc in docs for k, v in _set(doc.limits).items()}),
        business_hours=next((doc.business_hours for doc in reversed(docs) if doc.business_hours), None),
        files=tuple(str(f.path) for f in files),
        version=digest.hexdigest()[:12],
        origins=origins,
    )


def _policy_files(directory: Path) -> list[Path]:
    return sorted((p for p in directory.glob("*.toml") if p.is_file()), key=lambda p: p.name)


def _load(directory: Path) -> tuple[Policy | None, list[Problem]]:
    if not directory.is_dir():
        return None, [Problem(str(directory), None, "", "not a directory of policy files")]
    paths = _policy_files(directory)
    if not paths:
        return None, [Problem(str(directory), None, "", "no policy files: only *.toml files directly in this "
                                                        "directory load (not those in subfolders)")]
    files, problems = [], []
    for path in paths:
        file, found = _read(path)
        problems += found
        if file:
            files.append(file)
    origins, found = _across(files)
    problems = sorted([*problems, *found], key=lambda p: (p.file, p.line or 0))
    if problems:
        return None, problems
    return _merge(files, [f.doc for f in files if f.doc], origins), []


def load_policy(directory: Path) -> Policy:
    """The merged policy; raises `FileError` with every problem of every file."""
    policy, problems = _load(Path(directory))
    if policy is None:
        raise FileError(problems)
    return policy


def check(directory: Path) -> list[Problem]:
    """Every problem for `mailagent policy check`: the policy files, then the fixtures in
    `DIR/tests/` (unusable fixture files and failing cases). An empty list means all is well."""
    directory = Path(directory)
    policy, problems = _load(directory)
    if policy is None:
        return problems
    return fixture_problems(policy, directory / "tests")


def _stamp(directory: Path) -> tuple[tuple[str, int, int], ...]:
    """Names, mtimes and sizes: cheap to take every few seconds, changes on any edit."""
    out = []
    for path in _policy_files(directory) if directory.is_dir() else []:
        try:
            stat = path.stat()
        except OSError:
            continue
        out.append((path.name, stat.st_mtime_ns, stat.st_size))
    return tuple(out)


class PolicyStore:
    """The live policy of a process: edits to the files apply without a restart, and a broken
    edit never replaces a good policy (it is logged once and shown as `last_error`)."""

    def __init__(self, directory: Path, *, interval: float = 2.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.directory = Path(directory)
        self.interval = interval
        self.last_error: str | None = None
        self._clock = clock
        self._lock = threading.Lock()
        self._stamp = _stamp(self.directory)
        self._policy = load_policy(self.directory)       # a bad policy at startup stops startup
        self._checked = clock()

    def current(self) -> Policy:
        """The policy to use now; looks at the files at most every `interval` seconds."""
        if self._clock() - self._checked < self.interval:
            return self._policy
        with self._lock:
            self._checked = self._clock()
            stamp = _stamp(self.directory)
            if stamp != self._stamp:
                self._stamp = stamp
                self._reload()
        return self._policy

    def _reload(self) -> None:
        policy, problems = _load(self.directory)
        if policy is None:
            self.last_error = "\n".join(map(str, problems))
            log.error("policy in %s not reloaded, keeping version %s:\n%s",
                      self.directory, self._policy.version, self.last_error)
            return
        self._policy, self.last_error = policy, None
        log.info("policy reloaded from %s: version %s", self.directory, policy.version)
