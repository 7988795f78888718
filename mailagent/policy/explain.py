"""`mailagent policy explain`: a decision as text a rep or ops can check line by line.

The facts are re-evaluated against the policy to show the whole trace (each condition with the fact
it was compared with, the earlier rules and why they did not match); if the stored decision differs
from what this policy decides now, the text says so instead of pretending.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mailagent.policy.decide import (
    ActionDecision,
    Decision,
    Evaluation,
    evaluate,
    evaluate_action,
)
from mailagent.policy.facts import ActionFacts, Facts
from mailagent.policy.model import Policy


def _rule(policy: Policy, name: str) -> str:
    """A rule with its file and line; "defaults" and invariants as they are."""
    if name == "defaults":
        return "the defaults (no rule matched)"
    if name not in policy.origins:
        return name
    return f"rule {name!r} ({policy.origin(name)})"


def _render(decision: Decision | ActionDecision, now: Evaluation[Any], policy: Policy, noun: str, would: str) -> str:
    out = [f"Decision: {decision.decision}" + (f" (shadow mode: {would})" if decision.shadow else "")]
    out.append(f"Decided by: {_rule(policy, decision.rule)}")
    if now.by != decision.rule:
        out.append(f"The rules said: {now.said}, by {_rule(policy, now.by)}")
    out.append(f"Policy: version {policy.version or '(unversioned)'}, files: {', '.join(policy.files) or '(none)'}")
    if decision.policy_version and decision.policy_version != policy.version:
        out.append(f"Note: decided with policy version {decision.policy_version}; the trace below is the current one.")
    if (now.decision.decision, now.decision.rule) != (decision.decision, decision.rule):
        out.append(f"Note: the current policy decides {now.decision.decision} by {now.decision.rule}, "
                   f"not {decision.decision} by {decision.rule}.")

    out += ["", "Why:", *(f"  - {reason}" for reason in decision.reasons)]

    if matched := now.matched:
        out += ["", f"Conditions of {_rule(policy, matched.name)}:"]
        out += [f"  - {check}" for check in matched.checks] or [f"  - none: it matches every {noun}"]

    out += ["", "Invariants and limits:"]
    if not now.overrides:
        out.append("  - none applied")
    for override in now.overrides:
        effect = "changed the outcome" if override.rule == now.decision.rule else "also applies"
        out.append(f"  - {override.because} [{override.rule}; {effect}]")

    earlier = [tried for tried in now.tried if not tried.matched]
    if earlier:
        out += ["", "Rules tried before, that did not match:"]
        out += [f"  - {_rule(policy, tried.name)}: {check.condition} does not hold ({check.fact})"
                for tried in earlier if (check := tried.failed)]
    return "\n".join(out) + "\n"


def explain(decision: Decision, facts: Facts, policy: Policy) -> str:
    """Why a draft got its decision."""
    return _render(decision, evaluate(policy, facts), policy, "draft", "would have sent")


def explain_action(decision: ActionDecision, facts: ActionFacts, policy: Policy) -> str:
    """Why a proposed action was auto-approved or sent to a rep."""
    return _render(decision, evaluate_action(policy, facts), policy, "action", "would have been auto-approved")


def explain_recorded(decision: str, rule: str | None, reasons: Sequence[str], shadow: bool, policy_version: str,
                     facts: Mapping[str, Any], policy: Policy) -> str:
    """Why a stored draft got its decision, from what was recorded with it (`policy explain` and
    the review page). Facts recorded by an older version that no longer validate raise ValueError."""
    recorded = Decision(decision, rule or "", tuple(reasons), shadow, policy_version)
    return explain(recorded, Facts.from_dict(facts), policy)
