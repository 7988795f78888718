"""Classifiers reps ship: small TOML files in the `classifiers/` folder next to the policies, each
naming a label for a draft (or for the customer's message). Their labels are policy facts
(`when = { label.rudeness = "rude" }`) and daily metrics.

    name = "rudeness"                 # default: the file name; policies say label.rudeness
    description = "Would a customer read the draft as rude?"
    on = "draft"                      # draft | customer: the text it reads
    labels = ["rude", "ok"]
    default = "ok"                    # when no pattern matches
    enabled = true                    # live drafts get its label only when enabled
    sample = 1.0                      # the share of live drafts it labels (a stable hash of the draft)
    min_accuracy = 0.9                # `mailagent classifiers test` fails below it on the examples

    [[patterns]]                      # either patterns (regular expressions, case-insensitive) ...
    label = "rude"
    any = ["as I (already )?said", "read the manual"]

    rubric = "..."                    # ... or a rubric, judged by the configured model

    [[examples]]                      # labelled examples: what `classifiers test` scores it on
    text = "As I already said, read the manual."
    label = "rude"

A rubric classifier asks the model to pick one of its labels. Without a model (the offline
provider) it takes the label whose examples share the most words with the text, and
`classifiers test` scores that estimate honestly. `labels` (pure) is what the pipeline calls;
eval runs use `alabels` (the model for rubrics). A classifier whose patterns (or offline
estimate) fail its examples is never used live, whatever `enabled` says.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import logging
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, Strict, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from mailagent import tomlfile
from mailagent.config import Settings
from mailagent.evals import facts
from mailagent.policy.model import LabelName, Probability, Table, Text
from mailagent.tomlfile import FileError, Problem

log = logging.getLogger(__name__)


def _regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise PydanticCustomError("regex", "not a regular expression: {error}", {"error": str(exc)}) from None
    return value


class PatternSpec(Table):
    label: Text
    any: Annotated[tuple[Text, ...], Field(min_length=1)]

    @field_validator("any")
    @classmethod
    def _compiles(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_regex(v) for v in value)


class Example(Table):
    text: Text
    label: Text


class ClassifierFile(Table):
    name: LabelName | None = None
    description: str = ""
    on: Literal["draft", "customer"] = "draft"
    labels: Annotated[tuple[Text, ...], Field(min_length=2)]
    default: Text | None = None
    enabled: Annotated[bool, Strict()] = False
    sample: Probability = 1.0
    min_accuracy: Probability = 0.8
    patterns: tuple[PatternSpec, ...] = ()
    rubric: Text | None = None
    examples: Annotated[tuple[Example, ...], Field(min_length=1)]

    @model_validator(mode="after")
    def _consistent(self) -> ClassifierFile:
        if bool(self.patterns) == bool(self.rubric):
            raise PydanticCustomError("kind", "give either [[patterns]] or a rubric, not both and not neither")
        known = set(self.labels)
        used = [self.default] if self.default else []
        used += [p.label for p in self.patterns] + [e.label for e in self.examples]
        if unknown := sorted({label for label in used if label not in known}):
            raise PydanticCustomError("label", "labels {unknown} are not in labels = [...]",
                                      {"unknown": ", ".join(map(repr, unknown))})
        if self.patterns and not self.default:
            raise PydanticCustomError("default", "patterns need a default label (when none matches)")
        return self


@dataclass(frozen=True)
class Classifier:
    name: str
    path: str
    description: str
    on: str
    labels: tuple[str, ...]
    default: str
    enabled: bool
    sample: float
    min_accuracy: float
    patterns: tuple[tuple[str, tuple[re.Pattern[str], ...]], ...]
    rubric: str | None
    examples: tuple[tuple[str, str], ...]

    @property
    def kind(self) -> str:
        return "rubric" if self.rubric else "patterns"

    def estimate(self, text: str) -> str:
        """The label without a model: the first matching pattern; for a rubric, the label whose
        examples share the most words with the text (normalised by how many words they have)."""
        if not self.rubric:
            return next((label for label, regexes in self.patterns if any(r.search(text) for r in regexes)),
                        self.default)
        words = set(facts.content_words(text))
        vocabulary: dict[str, set[str]] = {}
        for example, label in self.examples:
            vocabulary.setdefault(label, set()).update(facts.content_words(example))
        closeness = {label: len(words & vocabulary[label]) / (len(vocabulary[label]) ** 0.5)
                     for label in self.labels if vocabulary.get(label)}
        best = max(closeness, key=lambda label: closeness[label], default=self.default)
        return best if closeness.get(best) else self.default

    def sampled(self, key: str) -> bool:
        """Whether a live draft (by a stable key, e.g. its id) is one of the `sample` share."""
        digest = int(hashlib.sha256(f"{self.name}:{key}".encode()).hexdigest()[:8], 16)
        return digest < self.sample * 0xFFFFFFFF or self.sample >= 1.0


def read(path: Path) -> Classifier:
    """One classifier file; a `FileError` lists every problem with its line."""
    text, data = tomlfile.read(path)
    try:
        doc = ClassifierFile.model_validate(data)
    except ValidationError as exc:
        raise FileError([Problem(p.file, p.line, p.key, p.message.replace("tuple", "array"))
                         for p in tomlfile.problems_from(str(path), text, exc)]) from None
    return Classifier(
        name=doc.name or path.stem, path=str(path), description=doc.description, on=doc.on, labels=doc.labels,
        default=doc.default or doc.labels[-1], enabled=doc.enabled, sample=doc.sample,
        min_accuracy=doc.min_accuracy,
        patterns=tuple((p.label, tuple(re.compile(r, re.IGNORECASE) for r in p.any)) for p in doc.patterns),
        rubric=doc.rubric, examples=tuple((e.text, e.label) for e in doc.examples),
    )


def read_all(directory: Path) -> list[Classifier]:
    """Every `*.toml` classifier in a folder (none when there is no folder); a `FileError` lists
    the problems of all bad files, and two classifiers with one name."""
    paths = sorted(Path(directory).glob("*.toml")) if Path(directory).is_dir() else []
    found, problems = [], []
    for path in paths:
        try:
            found.append(read(path))
        except FileError as exc:
            problems += exc.problems
    seen: dict[str, str] = {}
    for c in found:
        if c.name in seen:
            problems.append(Problem(c.path, None, "name", f"{c.name!r} is also the name of {seen[c.name]}"))
        seen.setdefault(c.name, c.path)
    if problems:
        raise FileError(problems)
    return found


@dataclass(frozen=True)
class TestResult:
    classifier: Classifier
    correct: int
    total: int
    misses: tuple[tuple[str, str, str], ...]        # (example text, expected, got)
    judged_by: str                                   # "patterns", "examples (offline)" or the model's name

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0

    @property
    def passed(self) -> bool:
        return self.accuracy >= self.classifier.min_accuracy


def test(classifier: Classifier, settings: Settings | None = None) -> TestResult:
    """Score a classifier on its own examples. A rubric is judged by the configured model when
    there is one; offline, each example is labelled by the other examples only (leave one out),
    so an example never answers for itself."""
    misses, correct = [], 0
    online = classifier.rubric and settings is not None and settings.model.provider != "offline"
    for index, (text, expected) in enumerate(classifier.examples):
        if online:
            got = asyncio.run(ask_model(classifier, text, settings))  # type: ignore[arg-type]
        elif classifier.rubric:
            others = classifier.examples[:index] + classifier.examples[index + 1:]
            got = replace(classifier, examples=others).estimate(text)
        else:
            got = classifier.estimate(text)
        if got == expected:
            correct += 1
        else:
            misses.append((text, expected, got))
    judged = "patterns" if not classifier.rubric else (settings.model.name if online and settings
                                                        else "nearest example (offline, leave one out)")
    return TestResult(classifier, correct, len(classifier.examples), tuple(misses), judged)


@functools.lru_cache(maxsize=8)
def _live(directory: str, stamp: tuple[tuple[str, int, int], ...], online: bool) -> tuple[Classifier, ...]:
    try:
        found = read_all(Path(directory))
    except FileError as exc:
        log.error("classifiers in %s not used:\n%s", directory, exc)
        return ()
    usable = []
    for c in found:
        if not c.enabled:
            continue
        if c.rubric and online:
            usable.append(c)              # judged by the model: `classifiers test` ran it before it was enabled
            continue
        result = test(c)
        if result.passed:
            usable.append(c)
        else:
            log.error("classifier %s is enabled but scores %.0f%% on its examples (min %.0f%%): not used",
                      c.name, 100 * result.accuracy, 100 * c.min_accuracy)
    return tuple(usable)


def live(settings: Settings) -> tuple[Classifier, ...]:
    """The classifiers in force (reread on change): enabled, and passing their own examples as
    they will be judged here; a rubric judged by a model is taken as enabled (testing it costs
    model calls: `mailagent classifiers test` does that before a lead enables it)."""
    directory = str(settings.evals.classifiers)
    return _live(directory, _stamp(directory), settings.model.provider != "offline")


def _stamp(directory: str) -> tuple[tuple[str, int, int], ...]:
    """Name, mtime and size of each `*.toml` file (what `read_all` reads): taken per draft, so one
    `scandir` and one `stat` a file (a `glob` of `Path`s and two `stat`s cost 3x as much)."""
    if not os.path.isdir(directory):
        return ()
    with os.scandir(directory) as entries:
        found = sorted((e for e in entries if e.name.endswith(".toml")), key=lambda e: e.name)
        return tuple((e.name, (st := e.stat()).st_mtime_ns, st.st_size) for e in found)


def labels(classifiers: Iterable[Classifier], *, draft: str, customer: str, key: str = "") -> dict[str, str]:
    """The labels for one draft, by classifier name: the facts a policy matches with
    `label.NAME`. Pure. Rubric classifiers give their offline estimate here (see `alabels`)."""
    return {c.name: c.estimate(draft if c.on == "draft" else customer)
            for c in classifiers if not key or c.sampled(key)}


async def alabels(classifiers: Iterable[Classifier], settings: Settings, *, draft: str, customer: str,
                  key: str = "") -> dict[str, str]:
    """`labels`, with rubric classifiers judged by the configured model when there is one."""
    out = {}
    for c in classifiers:
        if key and not c.sampled(key):
            continue
        text = draft if c.on == "draft" else customer
        out[c.name] = await ask_model(c, text, settings) if c.rubric and settings.model.provider != "offline" \
            else c.estimate(text)
    return out


async def ask_model(classifier: Classifier, text: str, settings: Settings) -> str:
    """One label from the model (structured output restricted to the classifier's labels); the
    default label when the model fails, with a warning."""
    from mailagent.agent.providers import openai_client

    schema = {"type": "object", "additionalProperties": False, "required": ["label"],
              "properties": {"label": {"type": "string", "enum": list(classifier.labels)}}}
    examples = "\n".join(f"- {json.dumps(t)} -> {label}" for t, label in classifier.examples[:20])
    try:
        async with openai_client(settings) as client:
            response = await client.chat.completions.create(
                model=settings.model.name, temperature=0,
                messages=[{"role": "system", "content": f"Label the text. {classifier.rubric}\nLabels: "
                                                        f"{', '.join(classifier.labels)}.\nExamples:\n{examples}"},
                          {"role": "user", "content": f"<text>\n{text}\n</text>"}],
                response_format={"type": "json_schema", "json_schema": {"name": "label", "strict": True,
                                                                        "schema": schema}},
            )
        label = json.loads(response.choices[0].message.content or "")["label"]
    except Exception as exc:  # noqa: BLE001 - a classifier must never fail a draft
        log.warning("classifier %s: the model failed (%s): using %r", classifier.name, exc, classifier.default)
        return classifier.default
    return label if label in classifier.labels else classifier.default
