"""Graders: small classes behind one interface, each scoring one quality of a draft 0..1 with a
reason a lead can check.

A grader sees a `Sample` (the reply, what the customer wrote, the rep's final when there is one,
what the run cited and proposed, the policy's decision) and returns a `Grade`, or None when it
does not apply: graders that need a reference skip cases without one, and graders of the reply's
text skip a run that paused on proposed actions (its reply is only written after approval, which
a replay never gives). A grade passes at or above the grader's threshold.

The deterministic graders here are pure. Those that need no reference (tone, safety, language,
promises) also make the pre-send gate (`gate.py`); the model graders are in `judges.py`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from mailagent.agent import guardrails
from mailagent.agent.guardrails import ExecutedAction
from mailagent.agent.offline import detect_language
from mailagent.evals import facts
from mailagent.evals.diff import similarity
from mailagent.evals.tone import tone
from mailagent.redact import secret_kinds

_EMAIL = re.compile(r"\b[\w.+-]+@([\w-]+(?:\.[\w-]+)+)\b")


@dataclass(frozen=True)
class Sample:
    """What a grader looks at: one reply to one customer turn."""

    reply: str
    customer_text: str = ""                     # the subject and the message the reply answers
    reference: str | None = None                # the rep's final
    cited: tuple[str, ...] = ()
    proposals: tuple[str, ...] = ()             # tools the run paused on (never executed in a replay)
    expected_tools: tuple[str, ...] = ()        # tools a rep approved when the case was made
    executed: tuple[ExecutedAction, ...] = ()
    paused: bool = False
    needs_human: bool = False
    decision: str = ""                          # what the policy decided for this draft
    customer_addr: str = ""
    our_domains: tuple[str, ...] = ()           # the mailbox's and the allowed link domains

    @property
    def customer_language(self) -> str:
        return detect_language(self.customer_text)


@dataclass(frozen=True)
class Grade:
    grader: str
    score: float
    reason: str
    threshold: float

    @property
    def passed(self) -> bool:
        return self.score >= self.threshold

    def to_dict(self) -> dict[str, Any]:
        return {"grader": self.grader, "score": round(self.score, 3), "passed": self.passed, "reason": self.reason,
                "threshold": self.threshold}


@dataclass
class Grader:
    """The interface. Subclasses set `kind`, override `score`, and may override `applies`."""

    kind: ClassVar[str] = ""
    needs_reference: ClassVar[bool] = False
    of_reply_text: ClassVar[bool] = True        # judges the reply's text (skipped for a paused run)
    default_threshold: ClassVar[float] = 1.0

    name: str = ""
    weight: float = 1.0
    threshold: float | None = None

    def __post_init__(self) -> None:
        self.name = self.name or self.kind
        if self.threshold is None:
            self.threshold = self.default_threshold

    def applies(self, sample: Sample) -> bool:
        if self.needs_reference and not sample.reference:
            return False
        return not (self.of_reply_text and sample.paused)

    def score(self, sample: Sample) -> tuple[float, str]:
        raise NotImplementedError

    def grade(self, sample: Sample) -> Grade | None:
        if not self.applies(sample):
            return None
        value, reason = self.score(sample)
        assert self.threshold is not None
        return Grade(self.name, max(0.0, min(1.0, value)), reason, self.threshold)

    async def agrade(self, sample: Sample) -> Grade | None:
        """For the eval runner: model graders await their judge; these answer at once."""
        return self.grade(sample)


def _found(phrase: str, text: str) -> bool:
    return facts.fold(phrase).strip() in facts.fold(text)


@dataclass
class Contains(Grader):
    """The reply says each of these phrases (case and accents folded): share found."""

    kind: ClassVar[str] = "contains"
    phrases: Sequence[str] = ()

    def score(self, sample: Sample) -> tuple[float, str]:
        missing = [p for p in self.phrases if not _found(p, sample.reply)]
        share = 1 - len(missing) / len(self.phrases) if self.phrases else 1.0
        return share, f"missing: {', '.join(map(repr, missing))}" if missing else "every phrase is there"


@dataclass
class NotContains(Grader):
    """The reply says none of these phrases."""

    kind: ClassVar[str] = "not_contains"
    phrases: Sequence[str] = ()

    def score(self, sample: Sample) -> tuple[float, str]:
        found = [p for p in self.phrases if _found(p, sample.reply)]
        return (0.0, f"says {', '.join(map(repr, found))}") if found else (1.0, "none of the phrases")


@dataclass
class CitesArticle(Grader):
    """The reply relies on a knowledge article (one of `articles`, when given)."""

    kind: ClassVar[str] = "cites_article"
    articles: Sequence[str] = ()

    def score(self, sample: Sample) -> tuple[float, str]:
        cited = set(sample.cited)
        if not cited:
            return 0.0, "cites no article"
        if self.articles and not cited & set(self.articles):
            return 0.0, f"cites {', '.join(sorted(cited))}, none of {', '.join(self.articles)}"
        return 1.0, f"cites {', '.join(sorted(cited))}"


@dataclass
class Language(Grader):
    """The reply is in the customer's language (the offline model's word-count detection)."""

    kind: ClassVar[str] = "language"

    def score(self, sample: Sample) -> tuple[float, str]:
        wanted, got = sample.customer_language, detect_language(facts.body(sample.reply) or sample.reply)
        return (1.0, f"{got}, like the customer") if got == wanted else (0.0, f"reply in {got}, customer wrote {wanted}")


@dataclass
class NoUnfulfilledPromise(Grader):
    """No claim that a refund, cancellation or resend happened when it did not run, and no amount
    other than the one executed (the output check's rules)."""

    kind: ClassVar[str] = "no_unfulfilled_promise"

    def score(self, sample: Sample) -> tuple[float, str]:
        issues = guardrails.claim_issues(sample.reply, executed_actions=sample.executed)
        return (0.0, "; ".join(i.detail for i in issues)) if issues else (1.0, "promises nothing that did not run")


@dataclass
class NoSecrets(Grader):
    """No secret (card number, password, token, one-time code) and no other person's address."""

    kind: ClassVar[str] = "no_secrets"

    def score(self, sample: Sample) -> tuple[float, str]:
        kinds = sorted(secret_kinds(sample.reply))
        ours = {d.lower() for d in sample.our_domains}
        others = sorted({m.group().lower() for m in _EMAIL.finditer(sample.reply)
                         if m.group().lower() != sample.customer_addr.lower()
                         and not any(m.group(1).lower() == d or m.group(1).lower().endswith("." + d) for d in ours)})
        problems = [f"contains a {k}" for k in kinds] + [f"names another person's address {a}" for a in others]
        return (0.0, "; ".join(problems)) if problems else (1.0, "no secrets or other people's data")


@dataclass
class Length(Grader):
    """The reply's body is between `min_words` and `max_words` words."""

    kind: ClassVar[str] = "length"
    min_words: int = 1
    max_words: int = 400

    def score(self, sample: Sample) -> tuple[float, str]:
        words = len(facts.body(sample.reply).split())
        if words < self.min_words:
            return 0.0, f"{words} words, fewer than {self.min_words}"
        if words > self.max_words:
            return 0.0, f"{words} words, more than {self.max_words}"
        return 1.0, f"{words} words"


@dataclass
class Tone(Grader):
    """A lexical estimate of courtesy (see `tone.py`)."""

    kind: ClassVar[str] = "tone"
    default_threshold: ClassVar[float] = 0.6

    def score(self, sample: Sample) -> tuple[float, str]:
        found = tone(sample.reply)
        return found.score, f"lexical estimate: {found.reason}"


@dataclass
class RequiredFacts(Grader):
    """The facts of the rep's final (amounts, ids, links, steps, statements) are in the reply."""

    kind: ClassVar[str] = "required_facts"
    needs_reference: ClassVar[bool] = True
    default_threshold: ClassVar[float] = 0.6

    def applies(self, sample: Sample) -> bool:
        return super().applies(sample) and bool(facts.facts(sample.reference or ""))

    def score(self, sample: Sample) -> tuple[float, str]:
        wanted = facts.facts(sample.reference or "")
        missing = facts.missing(wanted, sample.reply)
        share = 1 - len(missing) / len(wanted)
        said = f"{len(wanted) - len(missing)} of {len(wanted)} facts of the rep's reply"
        return share, said + (f"; missing: {'; '.join(repr(f.text[:60]) for f in missing[:3])}" if missing else "")


@dataclass
class Similarity(Grader):
    """How close the reply's wording is to the rep's final (1 - word edit distance, normalised)."""

    kind: ClassVar[str] = "similarity"
    needs_reference: ClassVar[bool] = True
    default_threshold: ClassVar[float] = 0.5

    def score(self, sample: Sample) -> tuple[float, str]:
        value = similarity(facts.body(sample.reply), facts.body(sample.reference or ""))
        return value, f"word similarity {value:.2f}"


@dataclass
class Actions(Grader):
    """The run proposes the tools a rep approved when the case was made, and no others."""

    kind: ClassVar[str] = "actions"
    of_reply_text: ClassVar[bool] = False

    def applies(self, sample: Sample) -> bool:
        return bool(sample.expected_tools or sample.proposals)

    def score(self, sample: Sample) -> tuple[float, str]:
        want, got = set(sample.expected_tools), set(sample.proposals)
        share = len(want & got) / len(want | got)
        return share, f"proposed {', '.join(sorted(got)) or 'nothing'}; expected {', '.join(sorted(want)) or 'nothing'}"


@dataclass
class DecisionIs(Grader):
    """The policy's decision for the draft is one of `expect` (e.g. send: it would be auto-sent)."""

    kind: ClassVar[str] = "decision"
    of_reply_text: ClassVar[bool] = False
    expect: Sequence[str] = ("send",)

    def score(self, sample: Sample) -> tuple[float, str]:
        ok = sample.decision in self.expect
        return (1.0 if ok else 0.0), f"the policy said {sample.decision or 'nothing'}"


DETERMINISTIC: dict[str, type[Grader]] = {g.kind: g for g in (
    Contains, NotContains, CitesArticle, Language, NoUnfulfilledPromise, NoSecrets, Length, Tone, RequiredFacts,
    Similarity, Actions, DecisionIs)}


@dataclass(frozen=True)
class Graded:
    """A sample's grades and what they add up to."""

    grades: tuple[Grade, ...] = field(default_factory=tuple)
    weights: tuple[float, ...] = ()

    @property
    def score(self) -> float:
        total = sum(self.weights)
        return sum(g.score * w for g, w in zip(self.grades, self.weights, strict=True)) / total if total else 0.0

    @property
    def passed(self) -> bool:
        return bool(self.grades) and all(g.passed for g in self.grades)


async def grade_all(graders: Sequence[Grader], sample: Sample) -> Graded:
    found = [(await g.agrade(sample), g.weight) for g in graders]
    kept = [(grade, weight) for grade, weight in found if grade is not None]
    return Graded(tuple(g for g, _ in kept), tuple(w for _, w in kept))
