"""The decision on a draft as a function of data (pipeline/decide.py): the policy facts built from a
ticket, the agent's result and the counts, and the verdict with the empty-draft invariant. No
database, no model: plain values in, a decision out."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from mailagent.actions.backends import Customer
from mailagent.agent.run import DraftResult
from mailagent.agent.support import ReplyDraft
from mailagent.pipeline import decide
from mailagent.policy import Policy
from mailagent.policy.model import Defaults, Rule, When
from mailagent.store.models import Action, ActionState, DraftState
from mailagent.store.tickets import Counts, Ticket

AT = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
TICKET = Ticket(
    draft_id=7, attempts=1, conversation_id=3, mailbox="support", customer_addr="ana@customer.example",
    customer_name="Ana", taken_by=None, message_id=11, message_id_header="m11@customer.example", references=(),
    kind="normal", parse_error=None, from_name="Ana", from_addr="ana@customer.example", reply_to="",
    subject="Password", text="How do I reset my password?", hidden_text="", quoted_text="",
    attachment_names=(), history=(), first_contact=True,
)
NO_COUNTS = Counts(auto_sends_customer_today=0, auto_sends_conversation=0, actions=())
SURE = ReplyDraft(reply="Hi Ana, here is how ...", confidence=0.95, intent="password_reset", language="en",
                  cited_articles=["password-reset.en"], needs_human=False, needs_human_reason="")
SEND_WHEN_SURE = Policy(defaults=Defaults(decision="hold", min_confidence=0.85),
                        rules=(Rule(name="sure", when=When(confidence_at_least=0.9), then="send"),))


def result(draft: ReplyDraft | None = SURE, **more: object) -> DraftResult:
    return DraftResult(draft, (), (), "offline", "v1", "trace_1", **more)  # type: ignore[arg-type]


def test_facts_come_from_the_ticket_the_result_and_the_counts() -> None:
    customer = Customer("cus_1", "ana@customer.example", "Ana", "business", "", "DE")
    counts = Counts(auto_sends_customer_today=2, auto_sends_conversation=1, actions=(
        Action(id=1, draft_id=7, conversation_id=3, call_id="c1", tool="issue_refund", arguments={}, amount=8.0,
               currency="EUR", idempotency_key="k", state=ActionState.EXECUTED, decided_by="rep@example.com"),))
    facts = decide.facts(replace(TICKET, attachment_names=("log.txt",)), customer, result(), counts, AT)
    assert (facts.intent, facts.language, facts.confidence, facts.needs_human) == ("password_reset", "en", 0.95, False)
    assert (facts.customer_tier, facts.customer_domain, facts.first_contact) == ("business", "customer.example", True)
    assert facts.has_attachments and facts.auto_sends_customer_today == 2 and facts.auto_sends_conversation == 1
    [action] = facts.actions
    assert action.tool == "issue_refund" and action.executed and action.approved_by_rep


def test_no_result_needs_a_human_and_a_parse_error_or_an_escalation_is_a_flag() -> None:
    facts = decide.facts(replace(TICKET, parse_error="boom"), None, None, NO_COUNTS, AT)
    assert facts.needs_human and facts.confidence == 0.0 and facts.flags == ("parse_error",)
    escalated = decide.facts(TICKET, None, result(escalations=("a lawyer wrote",)), NO_COUNTS, AT)
    assert escalated.needs_human and "agent_escalated" in escalated.flags


def test_a_policy_approval_is_not_a_reps() -> None:
    assert decide.by_rep("ana@example.com") and not decide.by_rep("policy:small refunds")
    assert not decide.by_rep("system") and not decide.by_rep(None)


def test_the_verdict_sends_what_the_policy_sends_but_never_an_empty_draft() -> None:
    facts = decide.facts(TICKET, None, result(), NO_COUNTS, AT)
    sent = decide.verdict(SEND_WHEN_SURE, facts, SURE.reply)
    assert (sent.decision, sent.rule, decide.state(sent)) == ("send", "sure", DraftState.SENT)
    empty = decide.verdict(SEND_WHEN_SURE, facts, "  \n")
    assert (empty.decision, empty.rule, decide.state(empty)) == ("hold", decide.EMPTY, DraftState.HELD)
    assert empty.reasons[-1] == "held: the draft is empty"


def test_taken_over_and_capped_conversations_are_held_whatever_the_rules_say() -> None:
    taken = decide.facts(replace(TICKET, taken_by="rep@example.com"), None, result(), NO_COUNTS, AT)
    assert decide.verdict(SEND_WHEN_SURE, taken, SURE.reply).decision == "hold"
    capped = decide.facts(TICKET, None, result(), replace(NO_COUNTS, auto_sends_conversation=99), AT)
    assert decide.verdict(SEND_WHEN_SURE, capped, SURE.reply).rule.startswith("invariant: auto-send cap")


def test_the_sender_facts_come_from_the_turns_verdict_and_rules_can_hold_on_them() -> None:
    verified = replace(TICKET, sender_authenticated=True, sender_auth_method="dmarc",
                       sender_auth_domain="customer.example", sender_auth_reason="dmarc=pass")
    forged = replace(verified, sender_authenticated=False, sender_auth_reason="dmarc=fail")
    hijack = replace(verified, from_addr="mallory@evil.example", sender_auth_domain="evil.example")
    elsewhere = replace(verified, reply_to="collect@evil.example")
    helpdesk = replace(TICKET, channel="zendesk", sender_authenticated=None)
    seen = {name: decide.facts(ticket, None, result(), NO_COUNTS, AT) for name, ticket in
            (("verified", verified), ("forged", forged), ("hijack", hijack), ("elsewhere", elsewhere),
             ("helpdesk", helpdesk))}
    assert {name: (f.sender_authenticated, f.sender_matches_customer) for name, f in seen.items()} == {
        "verified": (True, True), "forged": (False, False), "hijack": (True, False),
        "elsewhere": (True, False), "helpdesk": (True, True)}
    policy = Policy(defaults=Defaults(decision="hold", min_confidence=0.85), rules=(
        Rule(name="strangers", when=When(sender_matches_customer=False), then="escalate"),
        Rule(name="sure", when=When(confidence_at_least=0.9), then="send")))
    decisions = {name: decide.verdict(policy, f, "Hi Ana").decision for name, f in seen.items()}
    assert decisions == {"verified": "send", "forged": "escalate", "hijack": "escalate", "elsewhere": "escalate",
                         "helpdesk": "send"}
