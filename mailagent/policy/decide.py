"""Pure decisions: what happens to a draft, and whether a proposed action needs a rep.

The rules of the policy files are tried in order and the first match wins. Then the hard
invariants (DESIGN "Invariants" 3, 4, 5) are applied here in code, after the rules and whatever they
said, so no policy file can auto-send to a bounce, talk over a rep, or auto-approve a flagged
refund. `evaluate` keeps the whole trace (every rule tried, every condition compared with its
fact) so that `explain` shows exactly what `decide` did.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, time
from decimal import Decimal
from typing import Any, Generic, TypeVar
from zoneinfo import ZoneInfo

from mailagent.policy.facts import ActionFacts, Facts
from mailagent.policy.model import (
    CONVERSATION_SENDS_CEILING,
    CUSTOMER_SENDS_CEILING,
    DAYS,
    ActionRule,
    ActionWhen,
    BusinessHours,
    Policy,
    Rule,
    When,
    compare,
)

AUTOMATED = "invariant: automated mail is never answered"
TAKEN_OVER = "invariant: a human took over"
FLAGGED = "invariant: a flagged draft is never auto-sent"
CUSTOMER_CAP = "invariant: auto-send cap per customer"
CONVERSATION_CAP = "invariant: auto-send cap per conversation"
NEEDS_HUMAN = "invariant: a draft that needs a human is never auto-sent"
LOW_CONFIDENCE = "invariant: confidence below the minimum"
FLAGGED_ACTION = "invariant: a flagged action needs a rep"
BAD_AMOUNT = "invariant: an amount must be a number of at least 0"
# The invariants that make a person answer whatever the rules say: shown as the reason of a hold.
PERSON_NEEDED = (TAKEN_OVER, FLAGGED, NEEDS_HUMAN)


@dataclass(frozen=True)
class Decision:
    """What happens to a draft, and why, in words a rep can check."""

    decision: str                   # "send" | "hold" | "escalate" | "ignore"
    rule: str                       # the deciding rule's name, "defaults", or "invariant: <name>"
    reasons: tuple[str, ...]
    shadow: bool = False            # the rules said send, but shadow mode holds it: "would have sent"
    policy_version: str = ""


@dataclass(frozen=True)
class ActionDecision:
    """Whether a proposed action runs at once or waits for a rep."""

    decision: str                   # "auto_approve" | "rep"
    rule: str                       # rule name, "defaults", "invariant: <name>" or "limit: <key>"
    reasons: tuple[str, ...]
    shadow: bool = False            # the rules said auto_approve, but shadow mode sends it to a rep
    policy_version: str = ""


@dataclass(frozen=True)
class Check:
    """One condition of a rule, compared with the fact it looks at."""

    condition: str                  # as written: 'confidence_at_least = 0.85'
    fact: str                       # what it was compared with: 'confidence: 0.62'
    holds: bool

    def __str__(self) -> str:
        return f"{self.condition} ({self.fact})"


@dataclass(frozen=True)
class Tried:
    """A rule as evaluated against the facts: its conditions up to the first that failed."""

    name: str
    checks: tuple[Check, ...]

    @property
    def matched(self) -> bool:
        return all(check.holds for check in self.checks)

    @property
    def failed(self) -> Check | None:
        return next((check for check in self.checks if not check.holds), None)


@dataclass(frozen=True)
class Override:
    """A hard invariant or a limit that applies to the facts."""

    rule: str                       # "invariant: a human took over", "limit: refund_total_per_day"
    because: str                    # "a rep took the conversation over"


D = TypeVar("D", Decision, ActionDecision)


@dataclass(frozen=True)
class Evaluation(Generic[D]):
    """The whole trace of one decision: `decision` is what `decide` returns."""

    tried: tuple[Tried, ...]        # rules in order, up to and including the one that matched
    said: str                       # what the rules (or the defaults) decided
    by: str                         # the matching rule's name, or "defaults"
    overrides: tuple[Override, ...] # invariants and limits that apply to these facts, in order
    decision: D

    @property
    def matched(self) -> Tried | None:
        return self.tried[-1] if self.tried and self.tried[-1].matched else None


# --- conditions -----------------------------------------------------------------------------

def _toml(value: Any) -> str:
    """A value the way it is written in a policy file, for messages."""
    if value is None:
        return "(none)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, time):
        return value.strftime("%H:%M")
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _language(have: str, want: str) -> bool:
    """`language = "de"` matches "de" and "de-AT"."""
    have = have.lower()
    return have == want.lower() or have.startswith(want.lower() + "-")


def _max_amount(facts: Facts) -> Decimal:
    return max((a.amount for a in facts.actions if a.amount is not None), default=Decimal(0))


def _all_executed(facts: Facts) -> bool:
    """The draft proposed actions, and every one was approved (by a rep or a rule) and ran."""
    return bool(facts.actions) and all(a.executed for a in facts.actions)


def _eq(have: Any, want: Any) -> bool:
    return bool(have == want)


def _at_least(have: Any, want: Any) -> bool:
    return bool(have is not None and have >= want)


def _at_most(have: Any, want: Any) -> bool:
    return bool(have is not None and have <= want)


Condition = tuple[str, Callable[[Any], Any], Callable[[Any, Any], bool]]   # fact label, getter, test

_DRAFT_CONDITIONS: dict[str, Condition] = {
    "channel": ("channel", lambda f: f.channel, _eq),
    "mailbox": ("mailbox", lambda f: f.mailbox, _eq),
    "intent": ("intent", lambda f: f.intent, _eq),
    "intent_in": ("intent", lambda f: f.intent, lambda have, want: have in want),
    "language": ("language", lambda f: f.language, _language),
    "language_in": ("language", lambda f: f.language, lambda have, want: any(_language(have, w) for w in want)),
    "confidence_at_least": ("confidence", lambda f: f.confidence, _at_least),
    "confidence_below": ("confidence", lambda f: f.confidence, lambda have, want: have < want),
    "needs_human": ("needs_human", lambda f: f.needs_human, _eq),
    "action": ("proposed actions", lambda f: tuple(a.tool for a in f.actions), lambda have, want: want in have),
    "any_action": ("proposed actions", lambda f: tuple(a.tool for a in f.actions), lambda have, want: bool(have) == want),
    "actions_executed": ("every proposed action approved and executed", _all_executed, _eq),
    "approved_by_rep": ("a rep approved a proposed action", lambda f: any(a.approved_by_rep for a in f.actions), _eq),
    "amount_over": ("largest proposed amount", _max_amount, lambda have, want: have > want),
    "amount_at_most": ("largest proposed amount", _max_amount, _at_most),
    "customer_tier": ("customer_tier", lambda f: f.customer_tier or "unknown", _eq),
    "tier_in": ("customer_tier", lambda f: f.customer_tier or "unknown", lambda have, want: have in want),
    "customer_domain": ("customer_domain", lambda f: f.customer_domain.lower(), _eq),
    "domain_in": ("customer_domain", lambda f: f.customer_domain.lower(), lambda have, want: have in want),
    "has_attachments": ("has_attachments", lambda f: f.has_attachments, _eq),
    "first_contact": ("first_contact", lambda f: f.first_contact, _eq),
    "sender_authenticated": ("sender_authenticated", lambda f: f.sender_authenticated, _eq),
    "sender_matches_customer": ("sender_matches_customer", lambda f: f.sender_matches_customer, _eq),
    "flag": ("flags", lambda f: f.flags, lambda have, want: want in have),
    "auto_sends_customer_today_at_least": ("auto_sends_customer_today", lambda f: f.auto_sends_customer_today, _at_least),
    "auto_sends_conversation_at_least": ("auto_sends_conversation", lambda f: f.auto_sends_conversation, _at_least),
}

_ACTION_CONDITIONS: dict[str, Condition] = {
    "tool": ("tool", lambda a: a.tool, _eq),
    "tool_in": ("tool", lambda a: a.tool, lambda have, want: have in want),
    "amount_at_most": ("amount", lambda a: a.amount, _at_most),     # an unknown amount never passes
    "currency": ("currency", lambda a: a.currency, _eq),
    "customer_tier": ("customer_tier", lambda a: a.customer_tier or "unknown", _eq),
    "tier_in": ("customer_tier", lambda a: a.customer_tier or "unknown", lambda have, want: have in want),
    "order_age_days_at_most": ("order_age_days", lambda a: a.order_age_days, _at_most),
    "order_age_days_over": ("order_age_days", lambda a: a.order_age_days,
                            lambda have, want: have is not None and have > want),
    "billing": ("billing", lambda a: a.billing or "unknown", _eq),
}


def _grade(name: str, want: str, facts: Facts) -> Check:
    have = facts.grades.get(name)
    return Check(f"grade.{name} = {_toml(want)}", f"grade.{name}: {_toml(have)}",
                 have is not None and math.isfinite(have) and compare(have, want))


def _label(name: str, want: str, facts: Facts) -> Check:
    have = facts.labels.get(name)
    return Check(f"label.{name} = {_toml(want)}", f"label.{name}: {_toml(have)}", have == want)


# Conditions on one named fact each, written `grade.tone = "< 0.6"`: a check per name. A draft
# that was not graded (or not classified) by that name never matches.
_EACH: dict[str, Callable[[str, str, Facts], Check]] = {"grade": _grade, "label": _label}


def _business_hours(want: bool, at: datetime, hours: BusinessHours | None) -> Check:
    condition = f"in_business_hours = {_toml(want)}"
    if hours is None:
        return Check(condition, "no [business_hours] are defined", False)
    local = at.astimezone(ZoneInfo(hours.timezone))
    fact = (f"it was {DAYS[local.weekday()]} {local:%H:%M} in {hours.timezone}; business hours are "
            f"{', '.join(hours.days)} {_toml(hours.start)}-{_toml(hours.end)}")
    return Check(condition, fact, hours.contains(at) == want)


def _checks(when: When | ActionWhen, facts: Any, table: dict[str, Condition],
            hours: BusinessHours | None = None) -> tuple[Check, ...]:
    """The conditions of a rule in grammar order, up to the first that fails (nothing after it
    can change the outcome or is shown by `explain`)."""
    out = []
    for key in type(when).model_fields:
        want = getattr(when, key)
        if want is None:
            continue
        if key in _EACH:
            for name, value in want.items():
                out.append(_EACH[key](name, value, facts))
                if not out[-1].holds:
                    return tuple(out)
            continue
        if key == "in_business_hours":
            check = _business_hours(want, facts.at, hours)
        else:
            label, get, test = table[key]
            have = get(facts)
            check = Check(f"{key} = {_toml(want)}", f"{label}: {_toml(have)}", test(have, want))
        out.append(check)
        if not check.holds:
            break
    return tuple(out)


R = TypeVar("R", Rule, ActionRule)


def _first_match(rules: Iterable[R], checks_of: Callable[[R], tuple[Check, ...]]) -> tuple[tuple[Tried, ...], R | None]:
    tried = []
    for rule in rules:
        tried.append(Tried(rule.name, checks_of(rule)))
        if tried[-1].matched:
            return tuple(tried), rule
    return tuple(tried), None


# --- drafts ---------------------------------------------------------------------------------

def _blocking_flag(flag: str) -> str | None:
    """Why this flag forbids an auto-send, or None if it does not."""
    if flag.startswith("injection"):
        return f"the message was flagged as a prompt injection ({flag})"
    if flag.startswith("output:"):
        return f"the draft failed an output check ({flag})"
    if flag == "parse_error":
        return "the message could not be parsed (parse_error)"
    if flag == "model_error":
        return "the model failed (model_error)"
    if flag == "sender_unverified":
        return ("the sender asked about an account it is not proven to hold: a forged or unauthenticated From, "
                "another sender in the thread, or a Reply-To elsewhere (sender_unverified)")
    return None


def _send_blockers(policy: Policy, facts: Facts) -> tuple[Override, ...]:
    """The invariants that turn a "send" into a "hold" for these facts, most important first."""
    found = []
    if facts.taken_over:
        found.append(Override(TAKEN_OVER, "a rep took the conversation over"))
    for flag in facts.flags:
        if because := _blocking_flag(flag):
            found.append(Override(FLAGGED, because))
    per_customer = min(policy.defaults.max_auto_sends_per_customer_per_day, CUSTOMER_SENDS_CEILING)
    if facts.auto_sends_customer_today >= per_customer:
        found.append(Override(CUSTOMER_CAP, f"the customer already got {facts.auto_sends_customer_today} "
                                            f"auto-sent replies in the last 24 hours (the cap is {per_customer})"))
    per_conversation = min(policy.defaults.max_auto_sends_per_conversation, CONVERSATION_SENDS_CEILING)
    if facts.auto_sends_conversation >= per_conversation:
        found.append(Override(CONVERSATION_CAP, f"this conversation already had {facts.auto_sends_conversation} "
                                                f"auto-sent replies (the cap is {per_conversation})"))
    if facts.needs_human:
        said = f": {facts.needs_human_reason}" if facts.needs_human_reason else ""
        found.append(Override(NEEDS_HUMAN, f"the agent said the draft needs a human{said}"))
    if not facts.confidence >= policy.defaults.min_confidence:     # written so that NaN is held too
        found.append(Override(LOW_CONFIDENCE, f"confidence {_toml(facts.confidence)} is below the minimum "
                                              f"{_toml(policy.defaults.min_confidence)}"))
    return tuple(found)


def _said(rule: Rule | ActionRule | None, said: str) -> str:
    return f"rule {rule.name!r} said {said}" if rule else f"no rule matched, so the default applied: {said}"


def _grounds(tried: Sequence[Tried], rule: Rule | ActionRule | None) -> list[str]:
    """Why the matching rule matched: its conditions with their facts, then its `reason`."""
    if rule is None:
        return []
    checks = tried[-1].checks
    out = [f"rule {rule.name!r} matched: " + ("; ".join(map(str, checks)) if checks else "it has no conditions")]
    if rule.reason:
        out.append(rule.reason)
    return out


def evaluate(policy: Policy, facts: Facts) -> Evaluation[Decision]:
    """The rules' verdict, then the invariants, with the full trace (see `explain`)."""
    tried, rule = _first_match(policy.rules, lambda r: _checks(r.when, facts, _DRAFT_CONDITIONS, policy.business_hours))
    said = rule.then if rule else policy.defaults.decision
    by = rule.name if rule else "defaults"
    grounds = _grounds(tried, rule)
    overrides = _send_blockers(policy, facts)

    def made(decision: str, decided_by: str, headline: str, *more: str, shadow: bool = False) -> Decision:
        return Decision(decision, decided_by, (headline, *more), shadow, policy.version)

    if facts.kind != "normal":
        automated = Override(AUTOMATED, f"the customer message is automated mail ({facts.kind})")
        decision = made("ignore", AUTOMATED, f"{_said(rule, said)}; ignored: {automated.because}, "
                                             "and automated mail is never answered", *grounds)
        return Evaluation(tried, said, by, (automated, *overrides), decision)
    person = [o for o in overrides if o.rule in PERSON_NEEDED]
    if said == "send" and overrides:
        first, *rest = overrides
        decision = made("hold", first.rule, f"{_said(rule, 'send')}; held: {first.because}",
                        *grounds, *(f"also: {o.because}" for o in rest))
    elif said == "hold" and person:
        # A rule that holds anyway is not the reason shown when a person is needed in any case:
        # the rep sees the flag or the agent's reason first, then the rule.
        first, *rest = person
        decision = made("hold", first.rule, f"held: {first.because}", *(f"also: {o.because}" for o in rest),
                        f"also: {_said(rule, 'hold')}", *grounds)
    elif said == "send" and (policy.defaults.mode == "shadow" or (rule is not None and rule.shadow)):
        where = "the policy is in shadow mode" if policy.defaults.mode == "shadow" else "the rule is in shadow mode"
        decision = made("hold", by, f"{_said(rule, 'send')}; held: {where}, so it would have sent",
                        *grounds, shadow=True)
    else:
        decision = made(said, by, _said(rule, said), *grounds)
    return Evaluation(tried, said, by, overrides, decision)


def decide(policy: Policy, facts: Facts) -> Decision:
    """What happens to a draft: send, hold, escalate or ignore."""
    return evaluate(policy, facts).decision


# --- actions --------------------------------------------------------------------------------

def _approval_blockers(policy: Policy, facts: ActionFacts) -> tuple[Override, ...]:
    """What turns an "auto_approve" into "rep": invariants first, then the `[limits]`."""
    found = []
    if facts.taken_over:
        found.append(Override(TAKEN_OVER, "a rep took the conversation over"))
    for flag in facts.flags:
        found.append(Override(FLAGGED_ACTION, f"the conversation is flagged ({flag})"))
    limits, amount = policy.limits, facts.amount
    if amount is not None and not (math.isfinite(amount) and amount >= 0):
        found.append(Override(BAD_AMOUNT, f"the amount {amount!r} is not a number of at least 0"))
    elif amount is not None:
        if limits.max_refund_amount is not None and amount > limits.max_refund_amount:
            found.append(Override("limit: max_refund_amount", f"{_toml(amount)} is more than "
                                                              f"max_refund_amount = {_toml(limits.max_refund_amount)}"))
        for key, before, whose in (("refund_per_customer_per_day", facts.refunded_customer_today, "for this customer"),
                                   ("refund_total_per_day", facts.refunded_total_today, "for all customers")):
            limit = getattr(limits, key)
            if limit is not None and Decimal(str(before)) + Decimal(str(amount)) > Decimal(str(limit)):   # exact sums
                found.append(Override(f"limit: {key}", f"{_toml(before)} already auto-approved {whose} in the last "
                                                       f"24 hours plus {_toml(amount)} is more than {key} = {_toml(limit)}"))
    return tuple(found)


def evaluate_action(policy: Policy, facts: ActionFacts) -> Evaluation[ActionDecision]:
    """The action rules' verdict, then invariants and limits, with the full trace."""
    tried, rule = _first_match(policy.action_rules, lambda r: _checks(r.when, facts, _ACTION_CONDITIONS))
    said = rule.then if rule else "rep"
    by = rule.name if rule else "defaults"
    grounds = _grounds(tried, rule)
    overrides = _approval_blockers(policy, facts)

    def made(decision: str, decided_by: str, headline: str, *more: str, shadow: bool = False) -> ActionDecision:
        return ActionDecision(decision, decided_by, (headline, *more), shadow, policy.version)

    if said == "auto_approve" and overrides:
        first, *rest = overrides
        decision = made("rep", first.rule, f"{_said(rule, 'auto_approve')}; a rep decides: {first.because}",
                        *grounds, *(f"also: {o.because}" for o in rest))
    elif said == "auto_approve" and policy.defaults.mode == "shadow":
        decision = made("rep", by, f"{_said(rule, 'auto_approve')}; a rep decides: the policy is in shadow "
                                   "mode, so it would have been auto-approved", *grounds, shadow=True)
    else:
        decision = made(said, by, _said(rule, said), *grounds)
    return Evaluation(tried, said, by, overrides, decision)


def decide_action(policy: Policy, facts: ActionFacts) -> ActionDecision:
    """Whether a proposed action with side effects may run without a rep."""
    return evaluate_action(policy, facts).decision
