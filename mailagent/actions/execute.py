"""Running an approved action, exactly once.

The body of every side-effect tool lands here. It runs only the stored proposal of that very tool
call, with the arguments as proposed; an action already executed returns its recorded result
without touching the backend (a resumed run after a crash); every call carries the proposal's
idempotency key, so a crash between the backend's success and our commit becomes a replay the
backend answers from its record. Limits are checked again here, in the call path, not only when
the proposal was decided: a bug in one place cannot pay out.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from mailagent.actions.backends.base import (
    Backend,
    BackendError,
    Mismatch,
    Rejected,
    Unavailable,
)
from mailagent.actions.proposals import action_facts, check
from mailagent.config import Settings
from mailagent.policy import current_policy, decide_action
from mailagent.store import audit, db, proposals
from mailagent.store.models import (
    Action,
    ActionState,
    Conversation,
    Draft,
    now,
)


class OutcomeUnknown(RuntimeError):
    """The backend did not answer: the action may or may not have happened. The run stops and is
    resumed later; the same idempotency key then tells the backend it is a retry."""


def run(settings: Settings, backend: Backend | None, draft_id: int, call_id: str, tool: str,
        arguments: dict[str, Any]) -> dict[str, Any]:
    """Run the approved proposal of this tool call of this draft, once; what the tool returns."""
    url = settings.database.url
    with db.reading(url) as s:
        action = proposals.of_call(s, draft_id, call_id)
    if action is None:
        return {"executed": False, "error": "no stored proposal for this call"}
    if action.state == ActionState.EXECUTED:
        return {"executed": True, **(action.result or {})}     # ran before a crash: not again
    try:
        refusal = _refusal(settings, backend, action, tool, arguments)
    except Unavailable as exc:
        raise OutcomeUnknown(f"{tool}: could not check it: {exc}") from exc
    if refusal or backend is None:
        refusal = refusal or "no actions backend is configured"
        _refuse(url, action, refusal)
        return {"executed": False, "error": refusal}
    try:
        result = _call(backend, tool, arguments, action.idempotency_key)
    except Unavailable as exc:
        _uncertain(url, action, str(exc))
        raise OutcomeUnknown(f"{tool}: {exc}") from exc
    except Mismatch as exc:                  # the answer is about something else: a human must look
        _finish(url, action, ActionState.FAILED, error=f"the backend's answer does not match the request: {exc}")
        return {"executed": False, "error": f"not done as asked; a person will check it ({exc})"}
    except BackendError as exc:              # not found, rejected by a business rule, key conflict
        _finish(url, action, ActionState.FAILED, error=f"{type(exc).__name__}: {exc}")
        return {"executed": False, "error": str(exc)}
    _finish(url, action, ActionState.EXECUTED, result=result)
    return {"executed": True, **result}


UNCERTAIN = "outcome_unknown"


def _uncertain(url: str, action: Action, error: str) -> None:
    """Note that a call may have reached the backend: from now on only a retry with the same key
    settles it (the backend answers from its record), never a fresh check of the facts, which an
    action that did run would fail (an order already refunded has nothing left to refund)."""
    with db.session(url) as s:
        audit.record(s, "system", UNCERTAIN, conversation_id=action.conversation_id, draft_id=action.draft_id,
                     action_id=action.id, error=error)


def _was_uncertain(url: str, action: Action) -> bool:
    with db.reading(url) as s:
        return bool(audit.trail(s, action_id=action.id, event=UNCERTAIN))


def _refuse(url: str, action: Action, reason: str) -> None:
    """An approval that may not run now ends `failed` (no longer runnable, no longer counted
    against the limits), with the reason in the audit log."""
    with db.session(url) as s:
        proposals.settle(s, action.id or 0, state=ActionState.FAILED, error=f"refused in the call path: {reason}")
        audit.record(s, "system", "refused", conversation_id=action.conversation_id, draft_id=action.draft_id,
                     action_id=action.id, reason=reason)


def _finish(url: str, action: Action, state: ActionState, *, result: dict[str, Any] | None = None,
            error: str | None = None) -> None:
    """Record the outcome of an approved action (only once: a concurrent run that recorded it
    first wins) and its audit row, in one transaction."""
    with db.session(url) as s:
        recorded = proposals.settle(s, action.id or 0, state=state, result=result, error=error, executed_at=now())
        event = "executed" if state == ActionState.EXECUTED else "failed"
        audit.record(s, "system", event if recorded else "refused",
                     conversation_id=action.conversation_id, draft_id=action.draft_id, action_id=action.id,
                     tool=action.tool, result=result, error=error)


def _refusal(settings: Settings, backend: Backend | None, action: Action, tool: str,
             arguments: dict[str, Any]) -> str | None:
    """Why this approved action must not run now: it does not match the approved proposal, or,
    for a policy's approval, the facts or the limits no longer allow it (checked again here, in
    the call path)."""
    if action.state != ActionState.APPROVED:
        return f"action {action.id} is {action.state}, not approved"
    if action.tool != tool or action.arguments != arguments:
        return "the call differs from the approved proposal"
    if not (action.decided_by or "").startswith("policy:"):
        return None                                    # a person approved exactly this
    if _was_uncertain(settings.database.url, action):
        return None                                    # it may have run: the same key settles it
    if backend is None:
        return "no actions backend is configured"
    checked = check(backend, action.customer, tool, arguments)
    if checked.refusal:
        return checked.refusal
    with db.reading(settings.database.url) as s:
        draft, conversation = s.get(Draft, action.draft_id), s.get(Conversation, action.conversation_id)
        assert draft is not None and conversation is not None
        facts = action_facts(s, action, checked, draft, conversation.taken_by is not None)
    decision = decide_action(current_policy(settings), facts)
    if decision.decision != "auto_approve":
        return f"the policy no longer pre-approves it: {'; '.join(decision.reasons)}"
    return None


def _call(backend: Backend, tool: str, arguments: dict[str, Any], key: str) -> dict[str, Any]:
    if tool == "issue_refund":
        refund = backend.issue_refund(str(arguments["order_id"]), Decimal(str(arguments["amount"])),
                                      str(arguments["currency"]).upper(), str(arguments.get("reason", "")),
                                      idempotency_key=key)
        return refund.to_dict()
    if tool == "cancel_subscription":
        return backend.cancel_subscription(str(arguments["subscription_id"]), idempotency_key=key).to_dict()
    if tool == "resend_invoice":
        return backend.resend_invoice(str(arguments["invoice_id"]), to=None, idempotency_key=key).to_dict()
    raise Rejected(f"{tool!r} is not an action")
