"""Proposals: the tool calls with side effects an agent run paused on, checked and decided.

The model is assumed fooled. So a proposal is first checked against the facts (the order belongs
to the customer who wrote, the amount is refundable, the currency matches, not too many in one
turn, not something a rep already refused), and only then decided by the policy: `auto_approve`
within the limits written in the policy files, or a rep. The shipped policy pre-approves nothing.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from mailagent.actions.backends.base import Backend, BackendError, Customer, Unavailable
from mailagent.policy import ActionFacts, Policy, decide_action
from mailagent.store import audit, proposals
from mailagent.store.db import Session
from mailagent.store.models import Action, ActionState, Conversation, Draft, now

SIDE_EFFECT_TOOLS = ("issue_refund", "cancel_subscription", "resend_invoice")
MAX_PER_DRAFT = 3


def idempotency_key(draft_id: int, call_id: str, tool: str, arguments: dict[str, Any]) -> str:
    """Derived from the proposal, so every attempt to run it carries the same key."""
    canonical = json.dumps([draft_id, call_id, tool, arguments], sort_keys=True, separators=(",", ":"))
    return "ma-" + hashlib.sha256(canonical.encode()).hexdigest()[:40]


@dataclass(frozen=True)
class Checked:
    """What the facts say about a proposal: its money, and why it must be refused, if so."""

    amount: Decimal | None = None
    currency: str | None = None
    tier: str | None = None
    order_age_days: float | None = None
    billing: str | None = None              # annual | monthly, when the order says so
    refusal: str | None = None


def check(backend: Backend, customer: str, tool: str, arguments: dict[str, Any], *,
          known: Customer | None = None) -> Checked:
    """Refuse proposals no rep should even be asked about: unknown tools, other customers' data,
    amounts that cannot be refunded. A backend that is down raises `Unavailable`: the step is
    tried again later rather than refused."""
    try:
        return _check(backend, customer, tool, arguments, known)
    except Unavailable:
        raise
    except BackendError as exc:
        return Checked(refusal=f"the backend refused it: {exc}")


def _check(backend: Backend, customer: str, tool: str, arguments: dict[str, Any], known: Customer | None) -> Checked:
    if tool not in SIDE_EFFECT_TOOLS:
        return Checked(refusal=f"{tool!r} is not an action with side effects")
    if "_unparsed" in arguments:
        return Checked(refusal="the arguments are not a JSON object")
    found = known if known is not None and known.email.lower() == customer.lower() else backend.lookup_customer(customer)
    tier = found.tier if found else None
    if tool == "issue_refund":
        order = backend.lookup_order(str(arguments.get("order_id", "")))
        if order is None or order.customer_email.lower() != customer.lower():
            return Checked(tier=tier, refusal=f"order {arguments.get('order_id')!r} is not an order of {customer}")
        try:
            amount = Decimal(str(arguments.get("amount")))
            if not amount.is_finite():
                raise InvalidOperation
            amount = amount.quantize(Decimal("0.01"))
        except (InvalidOperation, ValueError):
            return Checked(tier=tier, refusal=f"amount {arguments.get('amount')!r} is not a number")
        currency = str(arguments.get("currency", "")).upper()
        age = (now().date() - datetime.fromisoformat(str(order.date)).date()).days
        paid = order.status in ("paid", "partially_refunded")
        refundable = Decimal(str(order.amount)) - Decimal(str(order.refunded)) if paid else Decimal(0)
        refusal = None
        if amount <= 0:
            refusal = f"a refund must be positive, not {amount}"
        elif currency != order.currency.upper():
            refusal = f"order {order.id} is in {order.currency}, not {currency}"
        elif not paid:
            refusal = f"order {order.id} is {order.status}: there is nothing to refund"
        elif amount > refundable:
            refusal = f"at most {refundable} {order.currency} of order {order.id} can be refunded, not {amount}"
        return Checked(amount, currency, tier, float(age), billing_of(order.description), refusal)
    if tool == "resend_invoice":
        owned = {i.id for i in backend.list_invoices(customer)}
        if str(arguments.get("invoice_id")) not in owned:
            return Checked(tier=tier, refusal=f"invoice {arguments.get('invoice_id')!r} is not an invoice of {customer}")
    if tool == "cancel_subscription":
        owned = {sub.id for sub in (found.subscriptions if found else ())}
        if str(arguments.get("subscription_id")) not in owned:
            return Checked(tier=tier, refusal=f"subscription {arguments.get('subscription_id')!r} is not one of {customer}")
    return Checked(tier=tier)


def billing_of(description: str) -> str | None:
    """How an order's plan is billed, from the backend's description of it ("Plus annual
    renewal, 5 seats", "Business monthly, 3 seats"); None when it does not say."""
    words = set(re.findall(r"[a-z]+", description.casefold()))
    annual, monthly = bool(words & {"annual", "yearly", "year"}), bool(words & {"monthly", "month"})
    return "annual" if annual and not monthly else "monthly" if monthly and not annual else None


def auto_approved_today(s: Session, customer: str | None = None, *, exclude: int | None = None) -> Decimal:
    """Money moved on policy approvals in the last 24 hours (for one customer, or everyone)."""
    return proposals.auto_approved_since(s, now() - timedelta(days=1), customer, exclude=exclude)


def action_facts(s: Session, action: Action, checked: Checked | None, draft: Draft, taken_over: bool) -> ActionFacts:
    return ActionFacts(
        tool=action.tool, amount=action.amount, currency=action.currency,
        customer_tier=checked.tier if checked else None,
        order_age_days=checked.order_age_days if checked else None,
        billing=checked.billing if checked else None,
        refunded_customer_today=auto_approved_today(s, action.customer, exclude=action.id),
        refunded_total_today=auto_approved_today(s, exclude=action.id),
        flags=tuple(draft.flags), taken_over=taken_over,
    )


def propose(s: Session, policy: Policy, draft: Draft, call_id: str, tool: str, arguments: dict[str, Any],
            checked: Checked, *, unverified_sender: str = "") -> Action:
    """Store one proposal and decide it (once: a proposal stored before is returned as it is).
    `checked` is what `check` found out about it; `unverified_sender` says why the sender cannot
    speak for the account (then only a rep may approve, whatever the policy says)."""
    key = idempotency_key(draft.id or 0, call_id, tool, arguments)
    existing = proposals.by_key(s, key)
    if existing is not None:
        return existing
    conversation = s.get(Conversation, draft.conversation_id)
    assert conversation is not None
    customer = conversation.customer_addr
    action = Action(draft_id=draft.id or 0, conversation_id=draft.conversation_id, call_id=call_id, tool=tool,
                    arguments=arguments, amount=checked.amount,
                    currency=checked.currency, customer=customer, idempotency_key=key)
    s.add(action)
    s.flush()
    audit.record(s, "agent", "proposed", conversation_id=action.conversation_id, draft_id=action.draft_id,
                 action_id=action.id, tool=tool, arguments=arguments)
    refusal = checked.refusal or _repeated_or_too_many(s, action)
    if refusal:
        decide(s, action, ActionState.REJECTED, "system", [refusal])
        return action
    if earlier := refused_for_customer(s, action):
        # A rep said no to this target for this customer: only a rep may say yes now.
        action.reasons = [earlier]
        audit.record(s, "system", "awaits_rep", conversation_id=action.conversation_id, draft_id=action.draft_id,
                     action_id=action.id, reasons=[earlier])
        return action
    if unverified_sender:
        action.reasons = [f"the sender is not verified as the account holder ({unverified_sender}): a rep decides"]
        audit.record(s, "system", "awaits_rep", conversation_id=action.conversation_id, draft_id=action.draft_id,
                     action_id=action.id, reasons=action.reasons)
        return action
    decision = decide_action(policy, action_facts(s, action, checked, draft, conversation.taken_by is not None))
    if decision.decision == "auto_approve":
        decide(s, action, ActionState.APPROVED, f"policy:{decision.rule}", list(decision.reasons))
    else:
        action.reasons = list(decision.reasons)
        audit.record(s, f"policy:{decision.rule}", "awaits_rep", conversation_id=action.conversation_id,
                     draft_id=action.draft_id, action_id=action.id, reasons=list(decision.reasons))
    return action


def waiting_reason(action: Action) -> str:
    """Why an action waits for a rep, for the draft's reasons: with the deciding rule's reason,
    so that what makes it doubtful is seen before it is approved."""
    said = [r for r in action.reasons[1:] if not r.startswith("rule ")] if action.reasons else []
    return f"action {action.id} ({action.tool}) waits for a rep" + (f": {said[-1]}" if said else "")


def _repeated_or_too_many(s: Session, action: Action) -> str | None:
    if proposals.count_of_draft(s, action.draft_id) > MAX_PER_DRAFT:
        return f"more than {MAX_PER_DRAFT} actions proposed for one reply"
    refused = proposals.rejections(s, action.tool, conversation_id=action.conversation_id)
    if any(_target(r.arguments) == _target(action.arguments) for r in refused if r.decided_by != "system"):
        return "a rep rejected an action on the same target in this conversation"
    return None


def refused_for_customer(s: Session, action: Action) -> str | None:
    """Why a proposal must not be auto-approved: a rep rejected the same tool on the same target
    (order, subscription, invoice) for the same customer, in any conversation. A refusal binds
    the target, not the thread: a new conversation about the same order is not a fresh start."""
    if not any(_target(action.arguments)):
        return None
    refused = proposals.rejections(s, action.tool, customer=action.customer, exclude=action.id)
    for earlier in refused:
        if earlier.decided_by not in (None, "system") and not earlier.decided_by.startswith("policy:") \
                and _target(earlier.arguments) == _target(action.arguments):
            when = f"{earlier.decided_at:%Y-%m-%d}" if earlier.decided_at else "earlier"
            return (f"{earlier.decided_by} rejected {action.tool} on {'/'.join(t for t in _target(action.arguments) if t)} "
                    f"for this customer on {when} (action {earlier.id}, conversation {earlier.conversation_id})")
    return None


def _target(arguments: dict[str, Any]) -> tuple[str, ...]:
    """What an action acts on, whatever the amount or the reason given: a rep's refusal of a
    refund of an order covers every refund of that order in the conversation."""
    return tuple(str(arguments.get(k, "")).strip().upper() for k in ("order_id", "subscription_id", "invoice_id"))


def decide(s: Session, action: Action, state: ActionState, by: str, reasons: list[str]) -> None:
    """Record a decision on a proposal, with its audit row."""
    action.state, action.decided_by, action.reasons, action.decided_at = state, by, reasons, now()
    audit.record(s, by, "approved" if state == ActionState.APPROVED else "rejected",
                 conversation_id=action.conversation_id, draft_id=action.draft_id, action_id=action.id,
                 tool=action.tool, arguments=action.arguments, reasons=reasons)
