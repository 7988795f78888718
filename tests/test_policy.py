"""The policy: grammar and validation, first-match rules, shadow mode, business hours, action rules
and limits, the hard invariants against a hostile policy, hot reload, fixtures and explain.

Policies are written as files under tmp_path and loaded the way production loads them.
"""

from __future__ import annotations

import logging
import re
import shutil
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest

from mailagent.config import DATA
from mailagent.policy import (
    ActionFacts,
    Facts,
    Policy,
    PolicyStore,
    ProposedAction,
    check,
    decide,
    decide_action,
    explain,
    explain_action,
    load_policy,
    run_fixtures,
)
from mailagent.policy.decide import (
    AUTOMATED,
    BAD_AMOUNT,
    CONVERSATION_CAP,
    CUSTOMER_CAP,
    FLAGGED,
    FLAGGED_ACTION,
    LOW_CONFIDENCE,
    NEEDS_HUMAN,
    TAKEN_OVER,
    Decision,
)
from mailagent.policy.model import ActionWhen, BusinessHours, When
from mailagent.tomlfile import FileError

SHIPPED = DATA / "policies"
SURE: dict[str, Any] = {"intent": "password_reset", "confidence": 0.95}
MONDAY_10_BERLIN = datetime(2025, 3, 31, 8, 0, tzinfo=UTC)      # 10:00 CEST
SATURDAY_10_BERLIN = datetime(2025, 3, 29, 9, 0, tzinfo=UTC)    # 10:00 CET
BERLIN_HOURS = '[business_hours]\ntimezone = "Europe/Berlin"\nstart = "09:00"\nend = "17:00"\n'


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def load(tmp_path: Path, text: str, name: str = "10-rules.toml") -> Policy:
    write(tmp_path, name, text)
    return load_policy(tmp_path)


def one_rule(tmp_path: Path, when: str, then: str = "escalate", extra: str = "") -> Policy:
    return load(tmp_path, f'[[rules]]\nname = "r"\nwhen = {{ {when} }}\nthen = "{then}"\n{extra}')


def problems(directory: Path) -> list[str]:
    return [str(p) for p in check(directory)]


# --- conditions -------------------------------------------------------------------------------

def refund(amount: float | None, tool: str = "issue_refund") -> ProposedAction:
    return ProposedAction(tool, {"order": "A-1"}, amount, "EUR" if amount is not None else None)


CONDITIONS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    # (when, facts that match, facts that do not)
    ('channel = "zendesk"', {"channel": "zendesk"}, {"channel": "email"}),
    ('mailbox = "billing"', {"mailbox": "billing"}, {"mailbox": None}),
    ('intent = "how_to"', {"intent": "how_to"}, {"intent": "other"}),
    ('intent_in = ["how_to", "outage"]', {"intent": "outage"}, {"intent": "dispute"}),
    ('language = "de"', {"language": "de-AT"}, {"language": "en"}),
    ('language_in = ["de", "fr"]', {"language": "fr"}, {"language": "en"}),
    ("confidence_at_least = 0.9", {"confidence": 0.9}, {"confidence": 0.89}),
    ("confidence_below = 0.5", {"confidence": 0.49}, {"confidence": 0.5}),
    ("needs_human = true", {"needs_human": True}, {"needs_human": False}),
    ('action = "issue_refund"', {"actions": (refund(None, "resend_invoice"), refund(5))},
     {"actions": (refund(None, "resend_invoice"),)}),
    ("any_action = false", {"actions": ()}, {"actions": (refund(None, "resend_invoice"),)}),
    ("actions_executed = true", {"actions": (ProposedAction("issue_refund", {}, 8.0, "EUR", executed=True),)},
     {"actions": (ProposedAction("issue_refund", {}, 8.0, "EUR", executed=True), refund(5))}),
    ("approved_by_rep = true", {"actions": (ProposedAction("issue_refund", {}, 8.0, "EUR", approved_by_rep=True),)},
     {"actions": (ProposedAction("issue_refund", {}, 8.0, "EUR", executed=True),)}),
    ("amount_over = 50", {"actions": (refund(10), refund(50.01))}, {"actions": (refund(50),)}),
    ("amount_at_most = 20", {"actions": (refund(20), refund(None, "resend_invoice"))}, {"actions": (refund(20.5),)}),
    ('customer_tier = "unknown"', {"customer_tier": None}, {"customer_tier": "free"}),
    ('tier_in = ["plus", "business"]', {"customer_tier": "business"}, {"customer_tier": "enterprise"}),
    ('customer_domain = "Example.com"', {"customer_domain": "EXAMPLE.COM"}, {"customer_domain": "example.org"}),
    ('domain_in = ["a.example", "b.example"]', {"customer_domain": "b.example"}, {"customer_domain": "c.example"}),
    ("has_attachments = true", {"has_attachments": True}, {"has_attachments": False}),
    ("first_contact = false", {"first_contact": False}, {"first_contact": True}),
    ("sender_authenticated = false", {"sender_authenticated": False}, {"sender_authenticated": True}),
    ("sender_matches_customer = false", {"sender_matches_customer": False}, {}),
    ('flag = "vip"', {"flags": ("new", "vip")}, {"flags": ("vipish",)}),
    ("in_business_hours = true", {"at": MONDAY_10_BERLIN}, {"at": SATURDAY_10_BERLIN}),
    ("auto_sends_customer_today_at_least = 2", {"auto_sends_customer_today": 2}, {"auto_sends_customer_today": 1}),
    ("auto_sends_conversation_at_least = 1", {"auto_sends_conversation": 1}, {"auto_sends_conversation": 0}),
    ('grade.tone = "< 0.6"', {"grades": {"tone": 0.59}}, {"grades": {"tone": 0.6}}),
    ('label.rudeness = "rude"', {"labels": {"rudeness": "rude", "topic": "billing"}}, {"labels": {"topic": "rude"}}),
]


@pytest.mark.parametrize(("when", "yes", "no"), CONDITIONS, ids=[c[0].split(" ")[0] for c in CONDITIONS])
def test_each_condition_matches_and_does_not(tmp_path: Path, when: str, yes: dict[str, Any], no: dict[str, Any]) -> None:
    policy = one_rule(tmp_path, when, extra=BERLIN_HOURS)
    matched = decide(policy, Facts(**yes))
    assert (matched.decision, matched.rule) == ("escalate", "r")
    assert matched.reasons[0] == "rule 'r' said escalate"
    assert matched.reasons[1].lower().startswith(f"rule 'r' matched: {when}".lower())   # domains are lowercased
    assert (decide(policy, Facts(**no)).decision, decide(policy, Facts(**no)).rule) == ("hold", "defaults")


def test_every_condition_of_the_grammar_is_tested() -> None:
    assert {when.split(" ")[0].split(".")[0] for when, _, _ in CONDITIONS} == set(When.model_fields)


@pytest.mark.parametrize(("when", "matches"), [
    ('grade.tone = "<= 0.6"', True), ('grade.tone = ">= 0.61"', False), ('grade.tone = "> 0.5"', True),
    ('grade.tone = "= 0.6"', True), ('grade.safety = "< 1"', False),
    ('grade.tone = "< 0.7", grade.safety = "= 1"', True), ('grade.tone = "< 0.7", grade.language = "= 1"', False),
    ('label.tone = "rude"', False),
])
def test_grade_and_label_conditions_compare_each_named_fact(tmp_path: Path, when: str, matches: bool) -> None:
    """A draft the gate did not grade by that name (or no classifier labelled) never matches."""
    policy = one_rule(tmp_path, when)
    facts = Facts(grades={"tone": 0.6, "safety": 1.0}, labels={"topic": "billing"})
    assert (decide(policy, facts).rule == "r") is matches


def test_all_conditions_of_a_rule_must_hold(tmp_path: Path) -> None:
    policy = one_rule(tmp_path, 'intent = "how_to", confidence_at_least = 0.9, channel = "email"')
    assert decide(policy, Facts(intent="how_to", confidence=0.95)).decision == "escalate"
    assert decide(policy, Facts(intent="how_to", confidence=0.95, channel="zendesk")).decision == "hold"


@pytest.mark.parametrize("then", ["send", "hold", "escalate", "ignore"])
def test_every_decision(tmp_path: Path, then: str) -> None:
    decision = decide(load(tmp_path, f'[[rules]]\nname = "all"\nthen = "{then}"\n'), Facts(**SURE))
    assert (decision.decision, decision.rule, decision.shadow) == (then, "all", False)


def test_first_match_wins_in_file_name_order(tmp_path: Path) -> None:
    write(tmp_path, "20-later.toml", '[[rules]]\nname = "later"\nwhen = { intent = "how_to" }\nthen = "send"\n')
    write(tmp_path, "10-earlier.toml", '[[rules]]\nname = "earlier"\nwhen = { intent = "how_to" }\nthen = "ignore"\n'
                                       '[[rules]]\nname = "second"\nwhen = {}\nthen = "escalate"\n')
    write(tmp_path, "examples/05-never.toml", '[[rules]]\nname = "never"\nthen = "send"\n')
    policy = load_policy(tmp_path)
    assert [r.name for r in policy.rules] == ["earlier", "second", "later"]
    assert policy.files == (str(tmp_path / "10-earlier.toml"), str(tmp_path / "20-later.toml"))
    assert decide(policy, Facts(intent="how_to", confidence=0.99)).rule == "earlier"
    assert decide(policy, Facts(intent="other", confidence=0.99)).rule == "second"


def test_defaults_decide_when_nothing_matches_and_merge_key_by_key(tmp_path: Path) -> None:
    write(tmp_path, "00-defaults.toml", '[defaults]\ndecision = "escalate"\nmin_confidence = 0.5\n')
    write(tmp_path, "10-override.toml", '[defaults]\ndecision = "ignore"\n'
                                        '[[rules]]\nname = "how-tos"\nwhen = { intent = "how_to" }\nthen = "send"\n')
    policy = load_policy(tmp_path)
    assert (policy.defaults.decision, policy.defaults.min_confidence) == ("ignore", 0.5)
    decision = decide(policy, Facts(intent="other", confidence=0.6))
    assert decision == Decision("ignore", "defaults", ("no rule matched, so the default applied: ignore",),
                                      policy_version=policy.version)
    assert decide(policy, Facts(intent="how_to", confidence=0.6)).decision == "send"    # 0.6 >= 0.5


def test_the_empty_policy_holds_everything_and_approves_nothing() -> None:
    assert decide(Policy(), Facts(**SURE)).decision == "hold"
    assert decide_action(Policy(), ActionFacts("resend_invoice")).decision == "rep"


# --- shadow ---------------------------------------------------------------------------------

def test_a_shadow_rule_holds_and_records_that_it_would_have_sent(tmp_path: Path) -> None:
    policy = load(tmp_path, '[[rules]]\nname = "trial"\nwhen = { intent = "password_reset" }\nthen = "send"\nshadow = true\n'
                            '[[rules]]\nname = "live"\nwhen = { intent = "how_to" }\nthen = "send"\n')
    trial = decide(policy, Facts(**SURE))
    assert (trial.decision, trial.rule, trial.shadow) == ("hold", "trial", True)
    assert trial.reasons[0] == "rule 'trial' said send; held: the rule is in shadow mode, so it would have sent"
    assert decide(policy, Facts(intent="how_to", confidence=0.95)).decision == "send"


def test_global_shadow_mode_sends_nothing_and_approves_nothing(tmp_path: Path) -> None:
    policy = load(tmp_path, '[defaults]\nmode = "shadow"\n[[rules]]\nname = "all"\nthen = "send"\n'
                            '[[action_rules]]\nname = "approve"\nthen = "auto_approve"\n')
    decision = decide(policy, Facts(**SURE))
    assert (decision.decision, decision.rule, decision.shadow) == ("hold", "all", True)
    assert "the policy is in shadow mode, so it would have sent" in decision.reasons[0]
    action = decide_action(policy, ActionFacts("resend_invoice"))
    assert (action.decision, action.rule, action.shadow) == ("rep", "approve", True)


def test_shadow_is_not_claimed_when_an_invariant_holds_the_draft(tmp_path: Path) -> None:
    policy = load(tmp_path, '[defaults]\nmode = "shadow"\n[[rules]]\nname = "all"\nthen = "send"\n')
    decision = decide(policy, Facts(**SURE, needs_human=True))
    assert (decision.decision, decision.shadow) == ("hold", False)


# --- business hours -------------------------------------------------------------------------

def test_business_hours_follow_the_time_zone_across_a_dst_change() -> None:
    berlin = BusinessHours(timezone="Europe/Berlin", start=time(9), end=time(17))
    # Friday 28 March 2025 is CET (UTC+1); Monday 31 March is CEST (UTC+2): same UTC, other answer.
    assert not berlin.contains(datetime(2025, 3, 28, 7, 30, tzinfo=UTC))     # 08:30 CET
    assert berlin.contains(datetime(2025, 3, 28, 8, 0, tzinfo=UTC))          # 09:00 CET
    assert berlin.contains(datetime(2025, 3, 31, 7, 30, tzinfo=UTC))         # 09:30 CEST
    assert not berlin.contains(datetime(2025, 3, 31, 6, 59, tzinfo=UTC))     # 08:59 CEST
    assert berlin.contains(datetime(2025, 3, 31, 14, 59, tzinfo=UTC))        # 16:59 CEST
    assert not berlin.contains(datetime(2025, 3, 31, 15, 0, tzinfo=UTC))     # 17:00 CEST: end is exclusive
    assert not berlin.contains(datetime(2025, 3, 28, 23, 30, tzinfo=UTC))    # Saturday 00:30 CET
    new_york = BusinessHours(timezone="America/New_York", days=("mon",), start=time(9), end=time(12))
    assert new_york.contains(datetime(2025, 3, 10, 13, 30, tzinfo=UTC))      # Mon 09:30 EDT
    assert not new_york.contains(datetime(2025, 3, 3, 13, 30, tzinfo=UTC))   # Mon 08:30 EST


def test_in_business_hours_in_a_rule_with_an_explicit_decision_time(tmp_path: Path) -> None:
    policy = load(tmp_path, BERLIN_HOURS + 'days = ["sat", "sun"]\n'
                  '[[rules]]\nname = "weekend"\nwhen = { in_business_hours = true }\nthen = "escalate"\n')
    assert decide(policy, Facts(at=SATURDAY_10_BERLIN)).decision == "escalate"
    assert decide(policy, Facts(at=MONDAY_10_BERLIN)).decision == "hold"
    naive_utc = SATURDAY_10_BERLIN.replace(tzinfo=None)                       # as SQLite returns it
    assert decide(policy, Facts(at=naive_utc)).decision == "escalate"


# --- action rules and limits ----------------------------------------------------------------

ACTION_CONDITIONS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ('tool = "issue_refund"', {"tool": "issue_refund"}, {"tool": "cancel_subscription"}),
    ('tool_in = ["issue_refund", "resend_invoice"]', {"tool": "resend_invoice"}, {"tool": "cancel_subscription"}),
    ("amount_at_most = 20", {"amount": 20.0}, {"amount": None}),
    ('currency = "EUR"', {"currency": "EUR"}, {"currency": "USD"}),
    ('customer_tier = "plus"', {"customer_tier": "plus"}, {"customer_tier": None}),
    ('tier_in = ["plus", "business"]', {"customer_tier": "business"}, {"customer_tier": "free"}),
    ("order_age_days_at_most = 30", {"order_age_days": 30.0}, {"order_age_days": 30.5}),
    ("order_age_days_over = 14", {"order_age_days": 14.5}, {"order_age_days": None}),
    ('billing = "annual"', {"billing": "annual"}, {"billing": None}),
]


@pytest.mark.parametrize(("when", "yes", "no"), ACTION_CONDITIONS, ids=[c[0].split(" ")[0] for c in ACTION_CONDITIONS])
def test_each_action_condition(tmp_path: Path, when: str, yes: dict[str, Any], no: dict[str, Any]) -> None:
    policy = load(tmp_path, f'[[action_rules]]\nname = "a"\nwhen = {{ {when} }}\nthen = "auto_approve"\n')
    facts = {"tool": "issue_refund", **yes}
    assert (decide_action(policy, ActionFacts(**facts)).decision, decide_action(policy, ActionFacts(**facts)).rule) \
        == ("auto_approve", "a")
    other = decide_action(policy, ActionFacts(**{"tool": "issue_refund", **no}))
    assert (other.decision, other.rule) == ("rep", "defaults")


def test_every_action_condition_is_tested() -> None:
    assert {when.split(" ")[0] for when, _, _ in ACTION_CONDITIONS} == set(ActionWhen.model_fields)


def test_action_rules_first_match_and_explicit_rep(tmp_path: Path) -> None:
    policy = load(tmp_path, '[[action_rules]]\nname = "no cancellations"\nwhen = { tool = "cancel_subscription" }\nthen = "rep"\n'
                            '[[action_rules]]\nname = "the rest"\nthen = "auto_approve"\n')
    assert decide_action(policy, ActionFacts("cancel_subscription")).rule == "no cancellations"
    assert decide_action(policy, ActionFacts("resend_invoice")).decision == "auto_approve"


LIMITED = ('[limits]\nmax_refund_amount = 20\nrefund_per_customer_per_day = 30\nrefund_total_per_day = 100\n'
           '[[action_rules]]\nname = "refunds"\nwhen = { tool = "issue_refund" }\nthen = "auto_approve"\n')


@pytest.mark.parametrize(("facts", "rule", "reason"), [
    ({"amount": 20.0, "refunded_customer_today": 10.0, "refunded_total_today": 80.0}, "refunds", None),
    ({"amount": 20.5}, "limit: max_refund_amount", "20.5 is more than max_refund_amount = 20"),
    ({"amount": 10.0, "refunded_customer_today": 25.0}, "limit: refund_per_customer_per_day",
     "25 already auto-approved for this customer in the last 24 hours plus 10 is more than refund_per_customer_per_day = 30"),
    ({"amount": 10.0, "refunded_total_today": 95.0}, "limit: refund_total_per_day",
     "95 already auto-approved for all customers in the last 24 hours plus 10 is more than refund_total_per_day = 100"),
])
def test_each_limit_downgrades_an_auto_approve(tmp_path: Path, facts: dict[str, Any], rule: str, reason: str | None) -> None:
    decision = decide_action(load(tmp_path, LIMITED), ActionFacts("issue_refund", currency="EUR", **facts))
    assert decision.rule == rule
    if reason is None:
        assert decision.decision == "auto_approve"
    else:
        assert decision.decision == "rep"
        assert decision.reasons[0] == f"rule 'refunds' said auto_approve; a rep decides: {reason}"


def test_the_shipped_policy_pre_approves_nothing_and_the_example_allows_small_refunds(tmp_path: Path) -> None:
    shipped = load_policy(SHIPPED)
    assert all(rule.then != "auto_approve" for rule in shipped.action_rules)
    assert {Path(f).parent for f in shipped.files} == {SHIPPED}             # examples/ and tests/ do not load
    for path in SHIPPED.glob("*.toml"):
        shutil.copy(path, tmp_path / path.name)
    shutil.copy(SHIPPED / "examples" / "small-refunds.toml", tmp_path / "50-small-refunds.toml")
    policy = load_policy(tmp_path)
    small: dict[str, Any] = {"tool": "issue_refund", "amount": 15.0, "currency": "EUR", "customer_tier": "plus", "order_age_days": 3.0}
    assert decide_action(shipped, ActionFacts(**small)).decision == "rep"
    assert decide_action(policy, ActionFacts(**small)).decision == "auto_approve"
    changes: list[tuple[dict[str, Any], str]] = [
        ({"amount": 25.0}, "defaults"), ({"customer_tier": "free"}, "defaults"), ({"currency": "USD"}, "defaults"),
        ({"order_age_days": 45.0}, "defaults"), ({"refunded_customer_today": 10.0}, "limit: refund_per_customer_per_day"),
        ({"refunded_total_today": 190.0}, "limit: refund_total_per_day"),
    ]
    for change, rule in changes:
        decision = decide_action(policy, ActionFacts(**{**small, **change}))
        assert (decision.decision, decision.rule) == ("rep", rule), change


# --- hard invariants against a hostile policy -----------------------------------------------

HOSTILE = """\
[defaults]
decision = "send"
min_confidence = 0.5
max_auto_sends_per_customer_per_day = 20
max_auto_sends_per_conversation = 10

[[rules]]
name = "send everything"
when = {}
then = "send"

[[action_rules]]
name = "approve everything"
when = {}
then = "auto_approve"
"""


@pytest.fixture
def hostile(tmp_path: Path) -> Policy:
    policy = load(tmp_path, HOSTILE)
    assert decide(policy, Facts(**SURE)).decision == "send"                       # it really is hostile
    assert decide_action(policy, ActionFacts("issue_refund", 10_000.0)).decision == "auto_approve"
    return policy


@pytest.mark.parametrize("kind", ["auto_reply", "bounce", "list", "feedback", "no_reply", "own"])
def test_automated_mail_is_ignored(hostile: Policy, kind: str) -> None:
    decision = decide(hostile, Facts(**SURE, kind=kind))
    assert (decision.decision, decision.rule) == ("ignore", AUTOMATED)
    assert decision.reasons[0] == (f"rule 'send everything' said send; ignored: the customer message is automated "
                                   f"mail ({kind}), and automated mail is never answered")


def test_a_human_who_took_over_is_never_talked_over(hostile: Policy) -> None:
    decision = decide(hostile, Facts(**SURE, taken_over=True))
    assert (decision.decision, decision.rule) == ("hold", TAKEN_OVER)
    assert decision.reasons[0] == "rule 'send everything' said send; held: a rep took the conversation over"
    action = decide_action(hostile, ActionFacts("issue_refund", 1.0, taken_over=True))
    assert (action.decision, action.rule) == ("rep", TAKEN_OVER)


@pytest.mark.parametrize(("flag", "because"), [
    ("injection", "the message was flagged as a prompt injection (injection)"),
    ("injection:hidden_html", "the message was flagged as a prompt injection (injection:hidden_html)"),
    ("parse_error", "the message could not be parsed (parse_error)"),
    ("model_error", "the model failed (model_error)"),
    ("output:action_claim", "the draft failed an output check (output:action_claim)"),
])
def test_a_flagged_draft_is_never_auto_sent(hostile: Policy, flag: str, because: str) -> None:
    decision = decide(hostile, Facts(**SURE, flags=("vip", flag)))
    assert (decision.decision, decision.rule) == ("hold", FLAGGED)
    assert decision.reasons[0] == f"rule 'send everything' said send; held: {because}"


def test_any_flag_sends_an_action_to_a_rep_but_harmless_flags_do_not_hold_a_draft(hostile: Policy) -> None:
    assert decide(hostile, Facts(**SURE, flags=("vip",))).decision == "send"
    action = decide_action(hostile, ActionFacts("resend_invoice", flags=("vip",)))
    assert (action.decision, action.rule) == ("rep", FLAGGED_ACTION)


def test_auto_send_caps_hold_with_the_code_ceiling_above_any_file(hostile: Policy) -> None:
    assert decide(hostile, Facts(**SURE, auto_sends_customer_today=19, auto_sends_conversation=9)).decision == "send"
    assert decide(hostile, Facts(**SURE, auto_sends_customer_today=20)).rule == CUSTOMER_CAP
    assert decide(hostile, Facts(**SURE, auto_sends_conversation=10)).rule == CONVERSATION_CAP
    # Even a policy that got past validation with huge caps is held at the ceilings.
    unbounded = replace(hostile, defaults=hostile.defaults.model_copy(
        update={"max_auto_sends_per_customer_per_day": 1000, "max_auto_sends_per_conversation": 1000}))
    capped = decide(unbounded, Facts(**SURE, auto_sends_customer_today=20))
    assert (capped.decision, capped.rule) == ("hold", CUSTOMER_CAP)
    assert decide(unbounded, Facts(**SURE, auto_sends_conversation=10)).rule == CONVERSATION_CAP


def test_the_default_caps(tmp_path: Path) -> None:
    policy = load(tmp_path, '[[rules]]\nname = "all"\nthen = "send"\n')
    assert decide(policy, Facts(**SURE, auto_sends_customer_today=4, auto_sends_conversation=2)).decision == "send"
    assert decide(policy, Facts(**SURE, auto_sends_customer_today=5)).rule == CUSTOMER_CAP
    assert decide(policy, Facts(**SURE, auto_sends_conversation=3)).rule == CONVERSATION_CAP


def test_needs_human_and_low_confidence_hold_a_send(hostile: Policy) -> None:
    assert decide(hostile, Facts(**SURE, needs_human=True)).rule == NEEDS_HUMAN
    low = decide(hostile, Facts(intent="how_to", confidence=0.49))
    assert (low.decision, low.rule) == ("hold", LOW_CONFIDENCE)
    assert low.reasons[0] == "rule 'send everything' said send; held: confidence 0.49 is below the minimum 0.5"
    assert decide(hostile, Facts(intent="how_to", confidence=0.5)).decision == "send"
    assert decide(hostile, Facts(intent="how_to", confidence=float("nan"))).rule == LOW_CONFIDENCE


@pytest.mark.parametrize("amount", [-5.0, float("nan"), float("inf")])
def test_an_action_with_a_nonsense_amount_needs_a_rep(hostile: Policy, amount: float) -> None:
    decision = decide_action(hostile, ActionFacts("issue_refund", amount, "EUR"))
    assert (decision.decision, decision.rule) == ("rep", BAD_AMOUNT)


def test_every_invariant_that_applies_is_named_the_first_one_decides(hostile: Policy) -> None:
    decision = decide(hostile, Facts(**SURE, taken_over=True, needs_human=True, flags=("injection",)))
    assert decision.rule == TAKEN_OVER
    assert "also: the message was flagged as a prompt injection (injection)" in decision.reasons
    assert "also: the agent said the draft needs a human" in decision.reasons


def test_invariants_never_turn_a_hold_into_anything_else(tmp_path: Path) -> None:
    policy = load(tmp_path, '[[rules]]\nname = "esc"\nthen = "escalate"\n')
    assert decide(policy, Facts(taken_over=True, needs_human=True, flags=("injection",))).decision == "escalate"
    assert decide(policy, Facts(kind="bounce")).decision == "ignore"


# --- check: every problem, with file, line and key ------------------------------------------

GOOD_RULE = '[[rules]]\nname = "how-tos"\nwhen = { intent = "how_to" }\nthen = "send"\n'


@pytest.mark.parametrize(("text", "expected"), [
    ('[[rules]]\nname = "a"\nthen = "send\n',
     ":3: TOML syntax error: Illegal character '\\n'"),
    ('[[rules]]\nname = "a"\nwhen = { intent = "how_to", confidnce_at_least = 0.9 }\nthen = "send"\n',
     ":3: rules[0].when.confidnce_at_least: unknown key, did you mean 'confidence_at_least'? (in rule 'a')"),
    ('[[rules]]\nname = "a"\nwhen = { confidence_at_least = "high" }\nthen = "send"\n',
     ":3: rules[0].when.confidence_at_least: input should be a valid number, got 'high' (in rule 'a')"),
    ('[[rules]]\nname = "a"\nwhen = { confidence_at_least = 1.2 }\nthen = "send"\n',
     ":3: rules[0].when.confidence_at_least: input should be less than or equal to 1, got 1.2 (in rule 'a')"),
    ('[[rules]]\nname = "a"\nwhen = { amount_over = -5 }\nthen = "hold"\n',
     ":3: rules[0].when.amount_over: input should be greater than or equal to 0, got -5 (in rule 'a')"),
    ('[[rules]]\nname = "a"\nwhen = { needs_human = "yes" }\nthen = "hold"\n',
     ":3: rules[0].when.needs_human: input should be a valid boolean, got 'yes' (in rule 'a')"),
    ('[[rules]]\nname = "a"\nwhen = { intent = "pasword_reset" }\nthen = "hold"\n',
     ":3: rules[0].when.intent: input should be 'password_reset', 'two_factor', 'login_problem', 'billing_question', "
     "'invoice_request', 'refund_request', 'cancellation', 'plan_change', 'outage', 'data_export', 'account_deletion', "
     "'gdpr_request', 'api_question', 'how_to', 'complaint', 'dispute' or 'other', got 'pasword_reset' (in rule 'a')"),
    ('[[rules]]\nname = "a"\nwhen = "always"\nthen = "hold"\n',
     ":3: rules[0].when: input should be a table, got 'always' (in rule 'a')"),
    ('[[rules]]\nname = "a"\nwhen = { intent_in = "how_to", language = "English" }\nthen = "hold"\n',
     ":3: rules[0].when.intent_in: input should be a valid array, got 'how_to' (in rule 'a')\n"
     "{path}:3: rules[0].when.language: expected a language code such as \"en\" or \"pt-BR\", got 'English' (in rule 'a')"),
    ('[[action_rules]]\nname = "a"\nwhen = { currency = "eur" }\nthen = "rep"\n',
     ":3: action_rules[0].when.currency: expected a currency code such as \"EUR\", got 'eur' (in rule 'a')"),
    ('[[rules]]\nname = "a"\nthen = "sned"\n',
     ":3: rules[0].then: input should be 'send', 'hold', 'escalate' or 'ignore', got 'sned' (in rule 'a')"),
    ('[[rules]]\nname = "a"\nthen = "hold"\nshadow = true\n',
     ':4: rules[0].shadow: shadow = true only applies to then = "send", got True (in rule \'a\')'),
    ('[[rules]]\nwhen = {}\nthen = "hold"\n',
     ":1: rules[0].name: required key is missing"),
    ('[[action_rules]]\nname = "a"\nthen = "approve"\n',
     ":3: action_rules[0].then: input should be 'auto_approve' or 'rep', got 'approve' (in rule 'a')"),
    ('[[rule]]\nname = "a"\nthen = "hold"\n',
     ":1: rule: unknown key, did you mean 'rules'?"),
    ('[defaults]\nmax_auto_sends_per_customer_per_day = 50\n',
     ":2: defaults.max_auto_sends_per_customer_per_day: input should be less than or equal to 20, got 50"),
    ('[limits]\nrefund_total_per_day = -1\n',
     ":2: limits.refund_total_per_day: input should be greater than or equal to 0, got -1"),
    ('[business_hours]\ntimezone = "Mars/Olympus"\n',
     ':2: business_hours.timezone: unknown time zone: expected an IANA name such as "Europe/Berlin", got \'Mars/Olympus\''),
    ('[business_hours]\ntimezone = "UTC"\nstart = "17:00"\nend = "09:00"\n',
     ":4: business_hours.end: must be later than start, got '09:00'"),
    ('[business_hours]\ntimezone = "UTC"\nstart = 9\n',
     ':3: business_hours.start: expected a time of day such as "09:00", got 9'),
    ('[[rules]]\nname = "a"\nwhen = { grade.tones = "< 0.5" }\nthen = "hold"\n',
     ":3: rules[0].when.grade.tones: input should be 'tone', 'safety', 'language' or 'promises', got 'tones' (in rule 'a')"),
    ('[[rules]]\nname = "a"\nwhen = { grade.tone = "below 0.5" }\nthen = "hold"\n',
     ':3: rules[0].when.grade.tone: expected a comparison with a score 0..1 such as "< 0.6" or ">= 0.8", '
     "got 'below 0.5' (in rule 'a')"),
    ('[[rules]]\nname = "a"\nwhen = { grade.tone = "< 5" }\nthen = "hold"\n',
     ':3: rules[0].when.grade.tone: expected a comparison with a score 0..1 such as "< 0.6" or ">= 0.8", '
     "got '< 5' (in rule 'a')"),
    ('[[rules]]\nname = "a"\nwhen = { label.Tone = "rude" }\nthen = "hold"\n',
     ':3: rules[0].when.label.Tone: expected a classifier name such as "tone", got \'Tone\' (in rule \'a\')'),
    ('[[rules]]\nname = "a"\nwhen = { in_business_hours = false }\nthen = "hold"\n',
     ":3: rules[0].when.in_business_hours: needs a [business_hours] table in one of the policy files (in rule 'a')"),
])
def test_check_reports_the_exact_problem(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, "10-broken.toml", text)
    expected = f"{path}{expected}".replace("{path}", str(path))
    assert "\n".join(problems(tmp_path)) == expected
    with pytest.raises(FileError) as exc:
        load_policy(tmp_path)
    assert str(exc.value) == expected


def test_check_reports_every_problem_of_every_file_at_once(tmp_path: Path) -> None:
    first = write(tmp_path, "10-a.toml", GOOD_RULE + '[[rules]]\nname = "x"\nthen = "sned"\n')
    second = write(tmp_path, "20-b.toml", GOOD_RULE + '[business_hours]\ntimezone = "Europe/Berlyn"\n')
    assert problems(tmp_path) == [
        f"{first}:7: rules[1].then: input should be 'send', 'hold', 'escalate' or 'ignore', got 'sned' (in rule 'x')",
        f"{second}:2: rules[0].name: duplicate rule name 'how-tos': already used at {first}:2",
        f"{second}:6: business_hours.timezone: unknown time zone: expected an IANA name such as \"Europe/Berlin\", "
        "got 'Europe/Berlyn'",
    ]


def test_check_on_a_folder_without_policy_files(tmp_path: Path) -> None:
    write(tmp_path, "examples/10-rules.toml", GOOD_RULE)
    assert problems(tmp_path) == [f"{tmp_path}: no policy files: only *.toml files directly in this directory "
                                  "load (not those in subfolders)"]
    assert problems(tmp_path / "missing") == [f"{tmp_path / 'missing'}: not a directory of policy files"]


def test_the_shipped_policy_and_its_fixtures_check_clean() -> None:
    assert check(SHIPPED) == []


def test_the_readme_examples_are_valid(tmp_path: Path) -> None:
    blocks = re.findall(r"```toml\n(.*?)```", (SHIPPED / "README.md").read_text(), re.S)
    fixtures = [b for b in blocks if "[[case]]" in b]
    for number, block in enumerate(b for b in blocks if b not in fixtures):
        write(tmp_path, f"{number:02}.toml", block)
    write(tmp_path, "tests/readme.toml", "\n".join(fixtures))
    policy = load_policy(tmp_path)
    assert len(policy.rules) == 8 and len(policy.action_rules) == 1 and policy.business_hours is not None
    assert len(run_fixtures(policy, tmp_path / "tests")) == 3


def test_the_readme_documents_every_key() -> None:
    readme = (SHIPPED / "README.md").read_text()
    from mailagent.policy.model import Defaults, Limits
    for model in (When, ActionWhen, Defaults, Limits, BusinessHours):
        for key in model.model_fields:
            assert f"`{key}`" in readme or f"{key} =" in readme, key


# --- hot reload -----------------------------------------------------------------------------

def test_reload_applies_edits_keeps_the_last_good_policy_and_logs_a_bad_edit_once(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write(tmp_path, "10-rules.toml", '[[rules]]\nname = "all"\nthen = "hold"\n')
    store = PolicyStore(tmp_path, interval=0)
    first = store.current()
    assert decide(first, Facts(**SURE)).decision == "hold"

    # Each edit changes the size: the store compares mtimes and sizes, and quick writes share an mtime.
    path.write_text('[[rules]]\nname = "all"\nthen = "escalate"\n')
    changed = store.current()
    assert changed.version != first.version and decide(changed, Facts(**SURE)).decision == "escalate"

    caplog.set_level(logging.ERROR, logger="mailagent.policy")
    path.write_text('[[rules]]\nname = "all"\nthen = "sned"\n')
    assert store.current() is changed and store.current() is changed
    assert store.last_error == (f"{path}:3: rules[0].then: input should be 'send', 'hold', 'escalate' or 'ignore', "
                                "got 'sned' (in rule 'all')")
    logged = [r for r in caplog.records if r.name == "mailagent.policy" and r.levelno == logging.ERROR]
    assert len(logged) == 1 and "got 'sned'" in logged[0].getMessage()

    path.write_text('[[rules]]\nname = "all"\nthen = "ignore"\n')
    fixed = store.current()
    assert decide(fixed, Facts(**SURE)).decision == "ignore" and store.last_error is None


def test_reload_looks_at_the_files_at_most_every_interval(tmp_path: Path) -> None:
    path = write(tmp_path, "10-rules.toml", '[[rules]]\nname = "all"\nthen = "hold"\n')
    now = [100.0]
    store = PolicyStore(tmp_path, interval=2.0, clock=lambda: now[0])
    before = store.current()
    path.write_text('[[rules]]\nname = "all"\nthen = "ignore"\n')
    now[0] += 1.9
    assert store.current() is before
    now[0] += 0.2
    assert store.current().rules[0].then == "ignore"
    write(tmp_path, "20-more.toml", GOOD_RULE)                          # a new file is a change too
    now[0] += 5
    assert [r.name for r in store.current().rules] == ["all", "how-tos"]


def test_a_bad_policy_at_startup_stops_startup(tmp_path: Path) -> None:
    write(tmp_path, "10-rules.toml", '[[rules]]\nname = "all"\nthen = "sned"\n')
    with pytest.raises(FileError):
        PolicyStore(tmp_path)


# --- fixtures -------------------------------------------------------------------------------

def test_the_shipped_fixtures_cover_the_default_policy_and_pass() -> None:
    results = run_fixtures(load_policy(SHIPPED), SHIPPED / "tests")
    assert len(results) >= 20
    assert [str(r) for r in results if not r.passed] == []
    assert {r.expected for r in results} >= {"send", "hold", "escalate", "ignore", "rep"}


def test_a_failing_fixture_is_reported(tmp_path: Path) -> None:
    write(tmp_path, "10-rules.toml", GOOD_RULE)
    case = write(tmp_path, "tests/cases.toml",
                 '[[case]]\nname = "how-to sends"\nfacts = { intent = "how_to", confidence = 0.9 }\nexpect = "send"\n\n'
                 '[[case]]\nname = "wrong"\nfacts = { intent = "how_to", confidence = 0.9 }\nexpect = "escalate"\n\n'
                 '[[case]]\nname = "wrong rule"\nfacts = { intent = "how_to", confidence = 0.9 }\nexpect = "send"\n'
                 'expect_rule = "other"\n')
    results = run_fixtures(load_policy(tmp_path), tmp_path / "tests")
    assert [(r.name, r.passed, r.expected, r.got, r.rule) for r in results] == [
        ("how-to sends", True, "send", "send", "how-tos"),
        ("wrong", False, "escalate", "send", "how-tos"),
        ("wrong rule", False, "send", "send", "how-tos"),
    ]
    assert problems(tmp_path) == [
        f"{case}:6: case 'wrong': FAILED: expected escalate, got send by rule 'how-tos'",
        f"{case}:11: case 'wrong rule': FAILED: expected send by rule 'other', got send by rule 'how-tos'",
    ]


def test_a_broken_fixture_file_is_a_problem_with_its_line(tmp_path: Path) -> None:
    write(tmp_path, "10-rules.toml", GOOD_RULE)
    case = write(tmp_path, "tests/cases.toml",
                 '[[case]]\nname = "typo"\nfacts = { intnt = "how_to" }\nexpect = "send"\n\n'
                 '[[case]]\nname = "type"\naction = { tool = "issue_refund", amount = "ten" }\nexpect = "rep"\n\n'
                 '[[case]]\nname = "kind"\naction = { tool = "issue_refund" }\nexpect = "send"\n')
    assert problems(tmp_path) == [
        f"{case}:3: case[0].facts.intnt: unknown key",
        f"{case}:8: case[1].action.amount: input should be a valid decimal, got 'ten'",
        f"{case}:14: case[2].expect: with action, expect one of auto_approve, rep, got 'send'",
    ]
    with pytest.raises(FileError):
        run_fixtures(load_policy(tmp_path), tmp_path / "tests")


# --- explain and facts ----------------------------------------------------------------------

def test_explain_names_the_deciding_rule_its_conditions_and_why_earlier_rules_failed(tmp_path: Path) -> None:
    path = write(tmp_path, "10-rules.toml",
                 '[[rules]]\nname = "refunds"\nwhen = { intent = "refund_request" }\nthen = "hold"\n'
                 '[[rules]]\nname = "resets"\nwhen = { intent = "password_reset", confidence_at_least = 0.9 }\nthen = "send"\n'
                 'reason = "from the help center"\n')
    policy = load_policy(tmp_path)
    facts = Facts(**SURE, flags=("injection",))
    decision = decide(policy, facts)
    assert decision.reasons[:3] == (
        "rule 'resets' said send; held: the message was flagged as a prompt injection (injection)",
        'rule \'resets\' matched: intent = "password_reset" (intent: "password_reset"); '
        "confidence_at_least = 0.9 (confidence: 0.95)",
        "from the help center",
    )
    text = explain(decision, facts, policy)
    assert "Decision: hold\n" in text
    assert "Decided by: invariant: a flagged draft is never auto-sent\n" in text
    assert f"The rules said: send, by rule 'resets' ({path}:6)\n" in text
    assert '  - confidence_at_least = 0.9 (confidence: 0.95)\n' in text
    assert ("  - the message was flagged as a prompt injection (injection) "
            "[invariant: a flagged draft is never auto-sent; changed the outcome]\n") in text
    assert f'  - rule \'refunds\' ({path}:2): intent = "refund_request" does not hold (intent: "password_reset")\n' in text
    assert "Note:" not in text


def test_explain_says_when_the_policy_now_decides_otherwise(tmp_path: Path) -> None:
    policy = load(tmp_path, GOOD_RULE)
    stored = Decision("hold", "defaults", ("no rule matched, so the default applied: hold",), policy_version="0ld")
    text = explain(stored, Facts(intent="how_to", confidence=0.9), policy)
    assert "Note: decided with policy version 0ld" in text
    assert "Note: the current policy decides send by how-tos, not hold by defaults." in text


def test_explain_action_names_the_limit(tmp_path: Path) -> None:
    policy = load(tmp_path, LIMITED)
    facts = ActionFacts("issue_refund", 50.0, "EUR")
    text = explain_action(decide_action(policy, facts), facts, policy)
    assert "Decided by: limit: max_refund_amount\n" in text
    assert f"The rules said: auto_approve, by rule 'refunds' ({tmp_path / '10-rules.toml'}:6)\n" in text
    assert "50 is more than max_refund_amount = 20 [limit: max_refund_amount; changed the outcome]" in text


def test_facts_round_trip_through_json_and_reject_typos() -> None:
    facts = Facts(channel="zendesk", intent="refund_request", confidence=0.8, actions=(refund(12.5),),
                  flags=("vip",), at=datetime(2025, 3, 30, 1, 30, tzinfo=UTC) + timedelta(minutes=1))
    data = facts.to_dict()
    assert data["at"] == "2025-03-30T01:31:00+00:00"
    assert data["actions"] == [{"tool": "issue_refund", "arguments": {"order": "A-1"}, "amount": 12.5, "currency": "EUR",
                                "approved_by_rep": False, "executed": False}]
    assert Facts.from_dict(data) == facts
    action = ActionFacts("issue_refund", 5.0, "EUR", flags=("x",), at=datetime(2025, 1, 1, tzinfo=UTC))
    assert ActionFacts.from_dict(action.to_dict()) == action
    with pytest.raises(ValueError):
        Facts.from_dict({"intnt": "how_to"})
    assert Facts(at=datetime(2025, 1, 1)).at.tzinfo is UTC
