"""Tools the agent may call.

Read-only tools run at once, and only ever about the customer of the conversation (taken from the
database, never from the model's arguments: a fooled model cannot read another customer's
orders). Tools with side effects need approval: the run pauses, the proposal is stored and
decided (by a rep, or a policy rule within its limits), and the tool body runs only after that,
through `actions.execute`, exactly once.
"""

from __future__ import annotations

import json
from typing import Any

from agents import RunContextWrapper, function_tool
from agents.tool_context import ToolContext

from mailagent.actions import execute
from mailagent.actions.backends.base import Backend, BackendError
from mailagent.agent.context import AgentContext
from mailagent.knowledge.search import search


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _backend(ctx: RunContextWrapper[AgentContext]) -> Backend:
    if ctx.context.backend is None:
        raise BackendError("no actions backend is configured", retryable=False)
    return ctx.context.backend


@function_tool
def search_knowledge(ctx: RunContextWrapper[AgentContext], query: str, locale: str | None = None) -> str:
    """Search the company's knowledge base; returns a JSON list of articles (id, title, intent,
    score 0..1, content).

    Args:
        query: The customer's question or the topic, in any language.
        locale: Preferred article language (en, de, es), if known.
    """
    hits = search(ctx.context.url, query, locale=locale or ctx.context.locale, limit=4)
    found = [{"id": h.id, "title": h.title, "locale": h.locale, "intent": h.intent, "score": round(h.score, 3),
              "content": h.body[:3000]} for h in hits]
    ctx.context.searches.append({"query": query, "locale": locale, "hits": [(h.id, round(h.score, 3)) for h in hits]})
    return _json(found)


def _withheld(ctx: RunContextWrapper[AgentContext], tool: str) -> str | None:
    """Account data is not given out for a sender who is not proven to be the customer of record
    (forged From, another sender in the thread, Reply-To elsewhere); the draft is then held."""
    if not ctx.context.unverified_sender:
        return None
    ctx.context.withheld.append(tool)
    return _json({"withheld": True, "reason": "the sender is not verified as the account holder: do not discuss "
                  "the account; say a colleague will follow up"})


@function_tool
def lookup_customer(ctx: RunContextWrapper[AgentContext]) -> str:
    """The customer who wrote: plan, seats, subscription status and renewal date."""
    if withheld := _withheld(ctx, "lookup_customer"):
        return withheld
    customer = _backend(ctx).lookup_customer(ctx.context.customer)
    return _json(customer.to_dict() if customer else {"found": False})


@function_tool
def lookup_order(ctx: RunContextWrapper[AgentContext], order_id: str) -> str:
    """An order of the customer who wrote (amount, status, refunded so far, invoice).

    Args:
        order_id: The order number, e.g. NN-1013.
    """
    if withheld := _withheld(ctx, "lookup_order"):
        return withheld
    order = _backend(ctx).lookup_order(order_id.strip())
    if order is None or order.customer_email.lower() != ctx.context.customer.lower():
        return _json({"found": False, "order_id": order_id})      # never another customer's order
    return _json(order.to_dict())


@function_tool
def list_invoices(ctx: RunContextWrapper[AgentContext]) -> str:
    """The invoices of the customer who wrote, newest first, with their download links."""
    if withheld := _withheld(ctx, "list_invoices"):
        return withheld
    invoices = _backend(ctx).list_invoices(ctx.context.customer)
    return _json([i.to_dict() for i in invoices])


@function_tool
def incident_status(ctx: RunContextWrapper[AgentContext]) -> str:
    """Service incidents: what is degraded right now, since when, and the latest public update;
    also recently resolved ones."""
    return _json([i.to_dict() for i in _backend(ctx).incidents()])


@function_tool
def escalate(ctx: RunContextWrapper[AgentContext], reason: str) -> str:
    """Hand the conversation to a person (a specialist team), with the reason.

    Args:
        reason: Why a person must handle this.
    """
    ctx.context.escalations.append(reason)
    return _json({"escalated": True, "reason": reason})


def _run_approved(ctx: ToolContext[AgentContext]) -> str:
    """The body of every tool with side effects: run the stored, approved proposal of this very
    call (its arguments as proposed), once; see `actions.execute`. Errors are not turned into a
    message for the model (`failure_error_function=None`): a backend that did not answer must stop
    the run, to be resumed later."""
    context = ctx.context
    return _json(execute.run(context.settings, context.backend, context.draft_id, ctx.tool_call_id, ctx.tool_name,
                             json.loads(ctx.tool_arguments or "{}")))


@function_tool(needs_approval=True, failure_error_function=None)
def issue_refund(ctx: ToolContext[AgentContext], order_id: str, amount: str, currency: str, reason: str) -> str:
    """Refund (part of) an order. Runs only after approval; say so to the customer until it ran.

    Args:
        order_id: The order to refund, e.g. NN-1013.
        amount: The amount, e.g. "8.00".
        currency: ISO currency code, e.g. EUR.
        reason: Why, in a sentence (kept in the audit log).
    """
    return _run_approved(ctx)


@function_tool(needs_approval=True, failure_error_function=None)
def cancel_subscription(ctx: ToolContext[AgentContext], subscription_id: str) -> str:
    """Cancel a subscription at the end of its period. Runs only after approval.

    Args:
        subscription_id: The subscription, e.g. sub_2005.
    """
    return _run_approved(ctx)


@function_tool(needs_approval=True, failure_error_function=None)
def resend_invoice(ctx: ToolContext[AgentContext], invoice_id: str) -> str:
    """Send an invoice again to the customer's address on file. Runs only after approval.

    Args:
        invoice_id: The invoice, e.g. INV-2026-1401.
    """
    return _run_approved(ctx)


KNOWLEDGE = [search_knowledge]
LOOKUPS = [lookup_customer, lookup_order, list_invoices, incident_status, escalate]
SIDE_EFFECTS = [issue_refund, cancel_subscription, resend_invoice]
