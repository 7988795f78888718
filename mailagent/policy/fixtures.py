"""Policy fixtures: `policies/tests/*.toml`, each `[[case]]` a set of facts and the decision ops
expect. They are the regression tests of a policy: `mailagent policy check` runs them, so an edit
that changes what happens to a known kind of message shows up before it ships.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import ValidationError

from mailagent import tomlfile
from mailagent.policy.decide import decide, decide_action
from mailagent.policy.facts import ActionFacts, Facts
from mailagent.policy.model import ActionThen, Policy, Table, Text, Then
from mailagent.tomlfile import FileError, Problem


class Case(Table):
    """One `[[case]]`: the facts of a draft or of one action, and the decision expected."""

    name: Text
    facts: dict[str, Any] | None = None         # a draft: `Facts` fields, omitted ones default
    action: dict[str, Any] | None = None        # or one action: `ActionFacts` fields
    expect: Literal[Then, ActionThen]
    expect_rule: Text | None = None


class FixtureFile(Table):
    """One `policies/tests/*.toml` file."""

    case: tuple[Case, ...] = ()


@dataclass(frozen=True)
class FixtureResult:
    """One case run against a policy."""

    name: str
    file: str
    passed: bool
    expected: str
    got: str
    rule: str                                   # the rule that decided
    line: int | None = None
    expected_rule: str | None = None

    @property
    def summary(self) -> str:
        want = self.expected + (f" by rule {self.expected_rule!r}" if self.expected_rule else "")
        verdict = "ok" if self.passed else f"FAILED: expected {want}, got {self.got} by rule {self.rule!r}"
        return f"case {self.name!r}: {verdict}"

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.summary}" if self.line else f"{self.file}: {self.summary}"


@dataclass(frozen=True)
class _Ready:
    case: Case
    line: int | None
    inputs: Facts | ActionFacts


def _unknown_key(problem: Problem) -> Problem:
    """Facts are dataclasses, whose pydantic word for an unknown key is "unexpected keyword"."""
    if problem.message.startswith("unexpected keyword argument"):
        return replace(problem, message="unknown key")
    return problem


def _read(path: Path) -> list[_Ready]:
    text, data = tomlfile.read(path)
    try:
        doc = FixtureFile.model_validate(data)
    except ValidationError as exc:
        raise FileError(tomlfile.problems_from(str(path), text, exc)) from None
    if not doc.case:
        raise FileError([Problem(str(path), None, "case", "no [[case]] entries")])
    lines = tomlfile.key_lines(text)
    ready, problems = [], []
    for index, case in enumerate(doc.case):
        loc: tomlfile.Loc = ("case", index)
        kind = "facts" if case.facts is not None else "action"
        allowed = get_args(Then) if kind == "facts" else get_args(ActionThen)
        if (case.facts is None) == (case.action is None):
            problems.append(Problem(str(path), tomlfile.line_of(lines, loc), tomlfile.dotted(loc),
                                    "needs exactly one of facts = { ... } (a draft) or action = { ... } (an action)"))
        elif case.expect not in allowed:
            problems.append(Problem(str(path), tomlfile.line_of(lines, (*loc, "expect")), tomlfile.dotted((*loc, "expect")),
                                    f"with {kind}, expect one of {', '.join(allowed)}, got {case.expect!r}"))
        else:
            try:
                inputs = Facts.from_dict(case.facts) if case.facts is not None else ActionFacts.from_dict(case.action or {})
            except ValidationError as exc:
                problems += map(_unknown_key, tomlfile.problems_from(str(path), text, exc, prefix=(*loc, kind)))
                continue
            ready.append(_Ready(case, tomlfile.line_of(lines, loc), inputs))
    if problems:
        raise FileError(problems)
    return ready


def _run(policy: Policy, path: Path, ready: _Ready) -> FixtureResult:
    case = ready.case
    got = decide(policy, ready.inputs) if isinstance(ready.inputs, Facts) else decide_action(policy, ready.inputs)
    passed = got.decision == case.expect and case.expect_rule in (None, got.rule)
    return FixtureResult(case.name, str(path), passed, case.expect, got.decision, got.rule, ready.line, case.expect_rule)


def run_fixtures(policy: Policy, directory: Path) -> list[FixtureResult]:
    """Every case of every `*.toml` in `directory` (none if it does not exist); raises `FileError`
    with every problem when a fixture file itself is unusable."""
    directory = Path(directory)
    results: list[FixtureResult] = []
    problems: list[Problem] = []
    for path in sorted(directory.glob("*.toml"), key=lambda p: p.name) if directory.is_dir() else []:
        try:
            results += [_run(policy, path, ready) for ready in _read(path)]
        except FileError as exc:
            problems += exc.problems
    if problems:
        raise FileError(problems)
    return results


def fixture_problems(policy: Policy, directory: Path) -> list[Problem]:
    """Unusable fixture files and failing cases, as problems (what `policy check` prints)."""
    try:
        results = run_fixtures(policy, directory)
    except FileError as exc:
        return exc.problems
    return [Problem(r.file, r.line, "", r.summary) for r in results if not r.passed]
