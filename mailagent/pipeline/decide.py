"""The decision on a draft, as functions of data: the policy facts built from the ticket, the
agent's result and the counts read in the decision's transaction; then the policy's verdict with
the invariants no policy file can change. No I/O here (tested directly)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from mailagent.actions.backends import Customer
from mailagent.agent.run import DraftResult, result_facts
from mailagent.pipeline import sender
from mailagent.policy import Decision, Policy, decide
from mailagent.policy.facts import Facts, ProposedAction
from mailagent.store.models import ActionState, DraftState
from mailagent.store.tickets import Counts, Ticket

STATE = {"send": DraftState.SENT, "hold": DraftState.HELD, "escalate": DraftState.ESCALATED,
         "ignore": DraftState.IGNORED}
EMPTY = "invariant: nothing to send"
NO_WAY_OUT = "invariant: no mailbox to reply from"


def by_rep(decided_by: str | None) -> bool:
    """A person decided (not a policy rule, not the system)."""
    return bool(decided_by) and not (decided_by or "").startswith(("policy:", "system"))


def facts(ticket: Ticket, customer: Customer | None, result: DraftResult | None, counts: Counts, at: datetime,
          *, grades: Mapping[str, float] | None = None, labels: Mapping[str, str] | None = None) -> Facts:
    """Everything the policy looks at for this draft: the ticket's, the run's, the counts read in
    the decision's transaction, and the pre-send gate's grades and classifiers' labels."""
    from_result = result_facts(result)
    if ticket.parse_error:
        from_result["flags"] = (*from_result["flags"], "parse_error")
    return Facts(
        channel=ticket.channel, mailbox=ticket.mailbox, kind=ticket.kind, **from_result,  # helpdesk hook (issue 9): channel
        actions=tuple(ProposedAction(a.tool, a.arguments, a.amount, a.currency, approved_by_rep=by_rep(a.decided_by),
                                     executed=a.state == ActionState.EXECUTED) for a in counts.actions),
        customer_tier=customer.tier if customer else None, customer_domain=ticket.customer_addr.rpartition("@")[2],
        has_attachments=bool(ticket.attachment_names), first_contact=ticket.first_contact,
        sender_authenticated=ticket.channel != "email" or bool(ticket.sender_authenticated),
        sender_matches_customer=not sender.unverified(ticket),
        taken_over=ticket.taken_by is not None, at=at,
        auto_sends_customer_today=counts.auto_sends_customer_today,
        auto_sends_conversation=counts.auto_sends_conversation,
        grades=dict(grades or {}), labels=dict(labels or {}),
    )


def verdict(policy: Policy, facts: Facts, text: str, *, no_reply_path: str | None = None) -> Decision:
    """The policy's decision; whatever it says, an empty draft is never sent, nor one with no way
    out (`no_reply_path` says why: no mailbox to reply from)."""
    decision = decide(policy, facts)
    if decision.decision == "send" and not text.strip():
        return Decision("hold", EMPTY, (*decision.reasons, "held: the draft is empty"), policy_version=policy.version)
    if decision.decision == "send" and no_reply_path:
        return Decision("hold", NO_WAY_OUT, (*decision.reasons, f"held: {no_reply_path}"),
                        policy_version=policy.version)
    return decision


def state(decision: Decision) -> DraftState:
    return DraftState.HELD if decision.shadow else STATE[decision.decision]
