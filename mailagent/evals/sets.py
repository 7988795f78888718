"""Eval sets: `NAME.toml` files in `[evals] sets` saying which cases a set holds, how each case is
graded, and when `mailagent eval run` fails as a CI gate. Validated like the policy files: every
problem with its file, line and key, all at once.

    description = "What reps corrected"
    [select]
    states = ["accepted"]                # new | accepted | dropped (default: accepted)
    sources = ["edit", "rep-written"]    # default: every source
    tags = ["intent:password_reset"]     # a case with any of these (default: every case)
    [gate]
    max_score_drop = 0.05                # against the baseline run: the mean score, and each grader's
    min_pass_rate = 0.8                  # without a baseline: the share of cases that must pass
    [[graders]]
    kind = "required_facts"              # see KINDS
    threshold = 0.6                      # a grade passes at or above it
    weight = 2                           # in the case's mean score
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, Strict, ValidationError

from mailagent import tomlfile
from mailagent.config import Settings
from mailagent.evals.cases import Filter
from mailagent.evals.graders import DETERMINISTIC, Grader
from mailagent.evals.judges import Judge
from mailagent.policy.model import Probability, Table, Text, Then
from mailagent.tomlfile import FileError, Problem

Weight = Annotated[float, Strict(), Field(gt=0, le=100)]
Words = Annotated[int, Strict(), Field(ge=0, le=100_000)]
Phrases = Annotated[tuple[Text, ...], Field(min_length=1)]


class Select(Table):
    states: tuple[Literal["new", "accepted", "dropped"], ...] = ("accepted",)
    sources: tuple[Literal["approved", "edit", "rep-written", "rejected", "flag"], ...] = ()
    tags: tuple[Text, ...] = ()


class Gate(Table):
    max_score_drop: Probability = 0.05
    min_pass_rate: Probability = 0.8


class _Spec(Table):
    name: Text | None = None
    weight: Weight = 1.0
    threshold: Probability | None = None


class ContainsSpec(_Spec):
    kind: Literal["contains", "not_contains"]
    phrases: Phrases


class CitesSpec(_Spec):
    kind: Literal["cites_article"]
    articles: tuple[Text, ...] = ()


class LengthSpec(_Spec):
    kind: Literal["length"]
    min_words: Words = 1
    max_words: Words = 400


class DecisionSpec(_Spec):
    kind: Literal["decision"]
    expect: Annotated[tuple[Then, ...], Field(min_length=1)] = ("send",)


class PlainSpec(_Spec):
    kind: Literal["language", "no_unfulfilled_promise", "no_secrets", "tone", "required_facts", "similarity",
                  "actions"]


class ModelSpec(_Spec):
    kind: Literal["model"]
    rubric: Literal["correctness", "tone", "policy"] = "correctness"
    prompt: Text | None = None


Spec = Annotated[ContainsSpec | CitesSpec | LengthSpec | DecisionSpec | PlainSpec | ModelSpec,
                 Field(discriminator="kind")]
KINDS = (*DETERMINISTIC, "model")


class SetFile(Table):
    description: str = ""
    select: Select = Select()
    gate: Gate = Gate()
    graders: Annotated[tuple[Spec, ...], Field(min_length=1)]


@dataclass(frozen=True)
class EvalSet:
    name: str
    path: str
    description: str
    select: Filter
    gate: Gate
    graders: tuple[Grader, ...]


def grader(spec: Any, settings: Settings) -> Grader:
    """The grader a spec describes (a model grader asks the configured model)."""
    options = spec.model_dump(exclude_none=True, exclude={"kind"})
    if spec.kind == "model":
        return Judge(settings=settings, **options)
    return DETERMINISTIC[spec.kind](**options)


def _problems(path: Path, text: str, exc: ValidationError) -> list[Problem]:
    """pydantic names the grader kind in the location of a tagged union: left out here, so the
    key reads `graders[2].phrases` and its line is found."""
    lines = tomlfile.key_lines(text)
    errors = exc.errors()
    out = []
    for error, problem in zip(errors, tomlfile.problems_from(str(path), text, exc), strict=True):
        loc = tuple(p for i, p in enumerate(error["loc"]) if not (i == 2 and error["loc"][0] == "graders" and p in KINDS))
        message = problem.message.replace("tuple", "array")
        if error["type"] == "union_tag_invalid":
            loc, message = (*loc, "kind"), f"must be one of {', '.join(KINDS)}"
        elif loc == ("graders",) and any(len(e["loc"]) > 1 and e["loc"][0] == "graders" for e in errors):
            continue                  # "no valid grader" only because each one has its own problem
        out.append(Problem(str(path), tomlfile.line_of(lines, loc), tomlfile.dotted(loc), message))
    return out


def read(path: Path, settings: Settings) -> EvalSet:
    """One set file; a `FileError` lists every problem."""
    text, data = tomlfile.read(path)
    try:
        doc = SetFile.model_validate(data)
    except ValidationError as exc:
        raise FileError(_problems(path, text, exc)) from None
    select = Filter(states=doc.select.states, sources=doc.select.sources, tags=doc.select.tags)
    graders = tuple(grader(spec, settings) for spec in doc.graders)
    names = [g.name for g in graders]
    if dupes := sorted({n for n in names if names.count(n) > 1}):
        lines = tomlfile.key_lines(text)
        raise FileError([Problem(str(path), tomlfile.line_of(lines, ("graders",)), "graders",
                                 f"two graders are named {dupes[0]!r}: give one a `name`")])
    return EvalSet(path.stem, str(path), doc.description, select, doc.gate, graders)


def names(settings: Settings) -> list[str]:
    directory = Path(settings.evals.sets)
    return sorted(p.stem for p in directory.glob("*.toml")) if directory.is_dir() else []


def load(settings: Settings, name: str) -> EvalSet:
    path = Path(settings.evals.sets) / f"{name}.toml"
    if not path.is_file():
        known = ", ".join(names(settings)) or "none"
        raise FileError([Problem(str(path), None, "", f"no eval set named {name!r} (sets in "
                                                      f"{settings.evals.sets}: {known})")])
    return read(path, settings)
