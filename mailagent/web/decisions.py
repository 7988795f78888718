"""The forms that change something. Each one calls a review verb with the signed-in user as the
actor (the verbs decide, lock, record feedback and audit), then hands the follow-up to
`worker.dispatch`, exactly as the CLI does. Two reps on the same draft: the verb lets one win
and tells the other who did it, which the page shows."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from mailagent.review import ReviewError, drafts, evalflags, takeover
from mailagent.review import actions as action_verbs
from mailagent.web.auth import Visitor
from mailagent.worker import dispatch

if TYPE_CHECKING:
    from mailagent.web.site import Site

log = logging.getLogger(__name__)


def field(form: FormData | None, name: str) -> str:
    """A text field as the rep wrote it, with the browser's CRLF line ends made LF."""
    value = form.get(name) if form is not None else None
    return value.replace("\r\n", "\n") if isinstance(value, str) else ""


def _back(form: FormData | None) -> str:
    """The page the form was on: a conversation, the actions page or the queue."""
    conversation = field(form, "conversation_id")
    if conversation.isdigit():
        return f"/conversations/{conversation}"
    return "/actions" if field(form, "from") == "actions" else "/queue"


def _follow_up(step: Callable[[], dispatch.Done | None], what: str) -> str:
    """Run or queue what comes next; the decision is already committed, so a failure here is
    reported (the sweeper retries it), never turned into a failed decision."""
    try:
        done = step()
    except Exception as exc:  # noqa: BLE001 - shown to the rep and logged with its traceback
        log.exception("follow-up of %s failed", what)
        return f"; the follow-up failed ({type(exc).__name__}: {exc}) and will be retried"
    return f"; {done.summary}" if done else "; the workers take it from here"


def approve_draft(site: Site, request: Request, visitor: Visitor, form: FormData | None) -> Response:
    draft_id = request.path_params["id"]
    edit = field(form, "mode") == "edit"
    try:
        approved = drafts.approve(site.settings, draft_id, visitor.user.name, field(form, "text") if edit else None)
    except ReviewError as exc:
        return site.done(request, _back(form), str(exc), ok=False)
    verb = "edited and approved" if approved.edited else "approved"
    then = _follow_up(lambda: dispatch.reply(site.settings, approved.outbound_id, approved.post_id), f"draft {draft_id}")
    return site.done(request, "/queue", f"draft {draft_id} {verb} by {visitor.user.name}{then}")


def reject_draft(site: Site, request: Request, visitor: Visitor, form: FormData | None) -> Response:
    draft_id = request.path_params["id"]
    try:
        drafts.reject(site.settings, draft_id, visitor.user.name, field(form, "reason"))
    except ReviewError as exc:
        return site.done(request, _back(form), str(exc), ok=False)
    return site.done(request, "/queue", f"draft {draft_id} rejected by {visitor.user.name}: nothing was sent")


def approve_action(site: Site, request: Request, visitor: Visitor, form: FormData | None) -> Response:
    return _decide_action(site, request, visitor, form, approve=True)


def reject_action(site: Site, request: Request, visitor: Visitor, form: FormData | None) -> Response:
    return _decide_action(site, request, visitor, form, approve=False)


def _decide_action(site: Site, request: Request, visitor: Visitor, form: FormData | None, approve: bool) -> Response:
    action_id = request.path_params["id"]
    try:
        if approve:
            action = action_verbs.approve(site.settings, action_id, visitor.user.name)
        else:
            action = action_verbs.reject(site.settings, action_id, visitor.user.name, field(form, "reason"))
    except ReviewError as exc:
        return site.done(request, _back(form), str(exc), ok=False)
    then = _follow_up(lambda: dispatch.resume(site.settings, action.draft_id), f"action {action_id}")
    verb = "approved" if approve else "rejected"
    message = f"action {action_id} ({action.tool}) {verb} by {visitor.user.name}{then}"
    if drafts.held(site.settings, action.draft_id):      # the reply that follows waits for this rep: show it
        return site.done(request, f"/conversations/{action.conversation_id}",
                         f"{message}; the reply is held for you to send or edit")
    return site.done(request, _back(form), message)


def take(site: Site, request: Request, visitor: Visitor, form: FormData | None) -> Response:
    conversation_id = request.path_params["id"]
    try:
        takeover.take(site.settings, conversation_id, visitor.user.name)
    except ReviewError as exc:
        return site.done(request, f"/conversations/{conversation_id}", str(exc), ok=False)
    return site.done(request, f"/conversations/{conversation_id}",
                     f"you took conversation {conversation_id}: the agent sends and approves nothing here until "
                     "you release it")


def release(site: Site, request: Request, visitor: Visitor, form: FormData | None) -> Response:
    conversation_id = request.path_params["id"]
    try:
        takeover.release(site.settings, conversation_id, visitor.user.name)
    except ReviewError as exc:
        return site.done(request, f"/conversations/{conversation_id}", str(exc), ok=False)
    return site.done(request, f"/conversations/{conversation_id}",
                     f"conversation {conversation_id} is handed back to the agent")


def flag(site: Site, request: Request, visitor: Visitor, form: FormData | None) -> Response:
    conversation_id = request.path_params["id"]
    draft = field(form, "draft_id")
    try:
        row = evalflags.flag(site.settings, conversation_id, visitor.user.name, field(form, "note"),
                             int(draft) if draft.isdigit() else None)
    except ReviewError as exc:
        return site.done(request, f"/conversations/{conversation_id}", str(exc), ok=False)
    return site.done(request, f"/conversations/{conversation_id}",
                     f"flagged for the eval set (flag {row.id}); thank you")
