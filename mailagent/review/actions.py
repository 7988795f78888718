"""A rep's verdict on a proposed action with side effects. The paused draft then continues (the
caller hands `draft_id` to the workers), and an approved action runs there, once."""

from __future__ import annotations

from mailagent.actions import proposals
from mailagent.config import Settings
from mailagent.review import ReviewError
from mailagent.store import db
from mailagent.store.db import Session
from mailagent.store.models import Action, ActionState


def approve(settings: Settings, action_id: int, rep: str) -> Action:
    with db.session(settings.database.url) as s:
        return decide_in(s, action_id, rep, approved=True)


def reject(settings: Settings, action_id: int, rep: str, reason: str) -> Action:
    """The reason is internal: the agent is told the action was not approved, never the words."""
    with db.session(settings.database.url) as s:
        return decide_in(s, action_id, rep, approved=False, reason=reason)


def decide_in(s: Session, action_id: int, rep: str, *, approved: bool, reason: str = "") -> Action:
    """`approve` or `reject` in the caller's transaction (a helpdesk event's tags)."""
    if not approved and not reason.strip():
        raise ReviewError("a rejection needs a reason: it is kept in the audit log")
    action = s.get(Action, action_id, with_for_update=True)
    if action is None:
        raise ReviewError(f"no action with id {action_id}")
    if action.state != ActionState.PROPOSED:
        who = f" (decided by {action.decided_by})" if action.decided_by else ""
        raise ReviewError(f"action {action_id} is {action.state}{who}: only proposed actions can be decided")
    proposals.decide(s, action, ActionState.APPROVED if approved else ActionState.REJECTED, rep,
                     [f"approved by {rep}" if approved else reason])
    return action
