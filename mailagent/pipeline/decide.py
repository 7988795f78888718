"""The decision on a draft, as functions of data: the policy facts built from the ticket, the
agent's result and the counts read in the decision's transaction; then the policy's verdict with
the invariants no policy file can change. No I/O here (tested directly)."""

from __future__ import annotations

from datetime import datetime

from mailagent.actions.backends import Customer
from mailagent.agent.run import DraftResult
from mailagent.policy import Decision, Policy, decide
from mailagent.policy.facts import Facts, ProposedAction
from mailagent.store.models import ActionState, DraftState
from mailagent.store.tickets import Counts, Ticket

STATE = {"send": DraftState.SENT, "hold": DraftState.HELD, "escalate": DraftState.ESCALATED,
         "ignore": DraftState.IGNORED}
EMPTY = "invariant: nothing to send"


def by_rep(decided_by: str | None) -> bool:
    """A person decided (not a policy rule, not the system)."""
    return bool(decided_by) and not (decided_by or "").startswith(("policy:", "system"))


def flags(ticket: Ticket, result: DraftResult | None) -> tuple[str, ...]:
    found = list(result.flags if result else ())
    if ticket.parse_error:
        found.append("parse_error")
    if result and result.escalations:
        found.append("agent_escalated")
    return tuple(found)


def facts(ticket: Ticket, customer: Customer | None, result: DraftResult | None, counts: Counts, at: datetime) -> Facts:
    output = result.draft if result else None
    return Facts(
        channel="email", mailbox=ticket.mailbox, kind=ticket.kind,
        intent=output.intent if output else "other", language=output.language if output else "",
        confidence=output.confidence if output else 0.0,
        needs_human=(output.needs_human if output else True) or bool(result and result.escalations),
        actions=tuple(ProposedAction(a.tool, a.arguments, a.amount, a.currency, approved_by_rep=by_rep(a.decided_by),
                                     executed=a.state == ActionState.EXECUTED) for a in counts.actions),
        customer_tier=customer.tier if customer else None, customer_domain=ticket.customer_addr.rpartition("@")[2],
        has_attachments=bool(ticket.attachment_names), first_contact=ticket.first_contact,
        flags=flags(ticket, result), taken_over=ticket.taken_by is not None, at=at,
        auto_sends_customer_today=counts.auto_sends_customer_today,
        auto_sends_conversation=counts.auto_sends_conversation,
    )


def verdict(policy: Policy, facts: Facts, text: str) -> Decision:
    """The policy's decision, and an empty draft is never sent whatever it says."""
    decision = decide(policy, facts)
    if decision.decision == "send" and not text.strip():
        return Decision("hold", EMPTY, (*decision.reasons, "held: the draft is empty"), policy_version=policy.version)
    return decision


def state(decision: Decision) -> DraftState:
    return DraftState.HELD if decision.shadow else STATE[decision.decision]
