"""A helpdesk event, carried out: the ticket read back through the API, its new public turns
stored in its conversation, and what reps did in the helpdesk applied through the same verbs as
the CLI and the review page, all in one transaction with the event's state.

What reps do there, and what it means here:
- a rep sends the draft reply we posted (Help Scout), as is or edited: the draft's final
  (`approved` or `edited`), and no takeover;
- a rep writes their own public reply: they take the conversation over (the agent stops
  auto-sending there), and it is the final of the draft it answered (`approved`, `edited` or
  `rep-written`, by how much of the draft it keeps);
- decision tags (a Zendesk macro adds them, a Help Scout rep adds them): `approve` posts the held
  draft publicly under the rep's name, or approves every action the paused draft proposed;
  `reject` rejects the draft (or its actions) with the rep's newest internal note as the reason;
  `approve_<id>` / `reject_<id>` decide one action; `release` hands the conversation back.
  Each tag is removed once acted on, by the post that carries out the decision or by a note that
  says what was done and what was refused.

Who did it comes from the signed event and the API's answer about that user, never from what a
comment says. Help Scout's tag events do not say who changed the tags: decisions by tag there are
recorded as `NAME:unknown` (only a team member can tag a conversation)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from html import escape

from mailagent import config, helpdesks
from mailagent.config import Helpdesk as HelpdeskSettings
from mailagent.config import Settings
from mailagent.helpdesks import tags as decision_tags
from mailagent.helpdesks.base import EventKind, Helpdesk, HelpdeskError, Person, Role, Ticket
from mailagent.helpdesks.guard import ticket_problem
from mailagent.pipeline import helpdesk, helpdesk_drafts, helpdesk_tickets
from mailagent.pipeline.helpdesk_tickets import Busy, Synced, TeamTurn
from mailagent.review import ReviewError, drafts, takeover
from mailagent.review import actions as review_actions
from mailagent.store import db, proposals
from mailagent.store import drafts as stored_drafts
from mailagent.store import helpdesk as stored
from mailagent.store.db import Session
from mailagent.store.models import (
    Action,
    ActionState,
    Conversation,
    Draft,
    DraftState,
    HelpdeskEvent,
    HelpdeskEventState,
)

log = logging.getLogger(__name__)

BUSY_SECONDS = 5
DECIDABLE = (DraftState.WAITING, DraftState.HELD, DraftState.ESCALATED)


@dataclass
class Handled:
    """What an event did, and what the workers do next."""

    summary: str = ""
    conversation_id: int | None = None
    draft: bool = False                                  # a new customer turn: draft the reply
    posts: list[int] = field(default_factory=list)       # posts queued: post them
    resume: list[int] = field(default_factory=list)      # drafts whose actions were decided: continue them
    retry_in: timedelta | None = None                    # not handled yet: try again then


ClientFactory = Callable[[Settings, str], Helpdesk]


def handle(settings: Settings, event_id: int, client: ClientFactory = helpdesks.client) -> Handled | None:
    """Handle one stored event; None when there is nothing to do (ignored, or handled before)."""
    url = settings.database.url
    event = helpdesk.process_event(settings, event_id)
    if event is None:
        return None
    name, desk = event.helpdesk, settings.helpdesk(event.helpdesk)
    try:
        ticket, actor = _read(settings, client, event)
    except HelpdeskError as exc:
        if exc.retryable:
            return Handled(retry_in=helpdesk.retry_event(url, event_id, str(exc)))
        helpdesk.fail_event(url, event_id, str(exc))
        return None
    except config.ConfigError as exc:          # a secret missing from the environment: fixable, so retried
        return Handled(retry_in=helpdesk.retry_event(url, event_id, str(exc)))
    problem = ticket_problem(event.ticket_id, ticket, desk)
    if problem is None and actor is not None and actor.id != event.actor_id:
        problem = f"asked for user {event.actor_id}, the API answered with user {actor.id}"
    if problem is not None:
        helpdesk.fail_event(url, event_id, problem)
        return None
    try:
        with db.session(url) as s:
            row = s.get(HelpdeskEvent, event_id, with_for_update=True)
            if row is None or row.state != HelpdeskEventState.RECEIVED:
                return None
            db.lock(s, f"helpdesk:{name}:{ticket.id}")
            synced = helpdesk_tickets.sync(s, name, desk.kind, ticket)
            handled = Handled(conversation_id=synced.conversation.id, draft=bool(synced.customer))
            done = [synced.summary, *(_rep_reply(s, settings, name, synced.conversation, t, handled)
                                      for t in synced.team)]
            if event.kind == EventKind.TAGS_CHANGED:
                done.append(_decide(s, settings, desk, name, ticket, synced, row, actor, handled))
            handled.summary = "; ".join(d for d in done if d)
            helpdesk.finish_event(row, handled.summary)
    except Busy as exc:
        return Handled(retry_in=helpdesk.retry_event(url, event_id, str(exc), wait=timedelta(seconds=BUSY_SECONDS)))
    log.info("%s: event %d (ticket %s): %s", name, event_id, ticket.id, handled.summary)
    return handled


def _read(settings: Settings, client: ClientFactory, event: HelpdeskEvent) -> tuple[Ticket, Person | None]:
    """The ticket as the API has it now, and (for a tag event) who the signed event says acted."""
    api = client(settings, event.helpdesk)
    try:
        ticket = api.ticket(event.ticket_id)
        actor = api.user(event.actor_id) if event.kind == EventKind.TAGS_CHANGED and event.actor_id else None
        return ticket, actor
    finally:
        api.close()


# --- a rep's public reply ------------------------------------------------------------------------

def _rep_reply(s: Session, settings: Settings, name: str, conversation: Conversation, team: TeamTurn,
               handled: Handled) -> str:
    rep = f"{name}:{team.turn.author_id}"
    cid = conversation.id or 0
    ticket_id = conversation.ticket_id or ""
    if team.draft_id is not None:
        try:
            draft, verdict = drafts.sent_by_rep_in(s, team.draft_id, rep, team.turn.text, from_draft=True,
                                                   before_message=team.message_id)
            handled.posts.append(helpdesk_drafts.answered(s, settings, draft, name, ticket_id))
            return f"draft {draft.id} sent by {rep} ({verdict})"
        except ReviewError as exc:
            log.info("%s: draft reply of draft %s sent, but: %s; taken as the rep's own reply", name, team.draft_id, exc)
    outcome = []
    if conversation.taken_by is None:
        takeover.take_in(s, cid, rep)
        outcome.append(f"taken over by {rep}")
    answered = _open_draft(s, cid, before=team.message_id)
    if answered is not None:
        draft, verdict = drafts.sent_by_rep_in(s, answered.id or 0, rep, team.turn.text, from_draft=False,
                                               before_message=team.message_id)
        handled.posts.append(helpdesk_drafts.answered(s, settings, draft, name, ticket_id))
        outcome.append(f"the final of draft {draft.id} ({verdict})")
    return f"reply by {rep}: " + (", ".join(outcome) or "recorded")


def _open_draft(s: Session, conversation_id: int, *, before: int) -> Draft | None:
    """The held or escalated draft a rep's reply (stored as message `before`) answers."""
    return stored_drafts.newest(s, conversation_id, (DraftState.HELD, DraftState.ESCALATED), before=before)


# --- decision tags ---------------------------------------------------------------------------------

@dataclass
class _Outcome:
    done: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    draft_decided: bool = False             # the draft tag goes too
    reply_post: int | None = None           # an approval's reply: it removes the tags itself


def _decide(s: Session, settings: Settings, desk: HelpdeskSettings, name: str, ticket: Ticket, synced: Synced,
            event: HelpdeskEvent, actor: Person | None, handled: Handled) -> str:
    """Carry out the decision tags on the ticket (read back), as the rep the event names."""
    cid = synced.conversation.id or 0
    removed = stored.tags_being_removed(s, name, ticket.id)
    found = decision_tags.read(desk.tags, [t for t in ticket.tags if t not in removed])
    if not found.any:
        return ""
    who = _reviewer(name, desk, actor)
    if isinstance(who, _Refusal):
        _note(s, handled, name, ticket.id, cid, [], [who.reason], found.tags)
        return f"tags {', '.join(found.tags)} not acted on: {who.reason}"
    reviewer, author = who
    draft = stored_drafts.newest(s, cid, DECIDABLE)
    because = _reason(ticket, desk, actor, found.tags, after=_posted_ids(s, draft))
    out = _Outcome()
    if found.release:
        _try(out, lambda: takeover.release_in(s, cid, reviewer), "handed back to the agent")
    for action_id in found.approve_actions:
        _action(s, out, handled, cid, action_id, reviewer, approved=True, reason="")
    for action_id in found.reject_actions:
        _action(s, out, handled, cid, action_id, reviewer, approved=False, reason=because)
    if found.approve or found.reject:
        _decide_draft(s, settings, desk, draft, found, event, reviewer, author, because, out, handled)
    if out.reply_post is not None:
        handled.posts.append(out.reply_post)
    if out.refused or out.reply_post is None or len(out.done) > 1:
        removes = (*found.tags, desk.tags.draft) if out.draft_decided else found.tags
        _note(s, handled, name, ticket.id, cid, out.done, out.refused, removes)
    return "; ".join([*out.done, *(f"refused: {r}" for r in out.refused)])


def _decide_draft(s: Session, settings: Settings, desk: HelpdeskSettings, draft: Draft | None,
                  found: decision_tags.Decisions, event: HelpdeskEvent, reviewer: str, author: str | None,
                  because: str, out: _Outcome, handled: Handled) -> None:
    """`approve` or `reject`: the newest draft that waits for a rep, or every action it proposes."""
    if draft is None:
        out.refused.append("no draft waits for a decision on this ticket")
    elif draft.state == DraftState.WAITING:
        for action in proposals.of_draft(s, draft.id or 0, ActionState.PROPOSED):
            _action(s, out, handled, draft.conversation_id, action.id or 0, reviewer, approved=found.approve,
                    reason=because)
    elif found.reject:
        out.draft_decided = _try(out, lambda: drafts.reject_in(s, draft.id or 0, reviewer, because),
                                 f"draft {draft.id} rejected by {reviewer}: {because}")
    elif desk.kind == "helpscout":
        out.refused.append(f"draft {draft.id} is a draft reply here: send it (or edit and send it) to approve it")
    elif not _shown_before(s, draft, event):
        out.refused.append(f"draft {draft.id} had not been shown on the ticket when the tag was added: "
                           "look at it, then approve again")
    else:
        try:
            approved = drafts.approve_in(s, settings, draft.id or 0, reviewer, author_id=author, remove_tags=found.tags)
        except ReviewError as exc:
            out.refused.append(str(exc))
            return
        out.reply_post, out.draft_decided = approved.post_id, True
        out.done.append(f"draft {draft.id} approved by {reviewer}: posted under their name")


@dataclass(frozen=True)
class _Refusal:
    reason: str


def _reviewer(name: str, desk: HelpdeskSettings, actor: Person | None) -> tuple[str, str | None] | _Refusal:
    """(who decided, as recorded; their helpdesk user id for a reply posted under their name)."""
    if desk.kind == "helpscout":
        return f"{name}:unknown", None
    if actor is None:
        return _Refusal("the event does not say who added the tags")
    if not actor.agent or actor.id == str(desk.bot_user_id):
        return _Refusal(f"user {actor.id} who added them is not a member of the support team")
    return f"{name}:{actor.id}", actor.id


def _try(out: _Outcome, verb: Callable[[], object], done: str) -> bool:
    try:
        verb()
    except ReviewError as exc:
        out.refused.append(str(exc))
        return False
    out.done.append(done)
    return True


def _action(s: Session, out: _Outcome, handled: Handled, conversation_id: int, action_id: int, reviewer: str, *,
            approved: bool, reason: str) -> None:
    action = s.get(Action, action_id)
    if action is None or action.conversation_id != conversation_id:
        out.refused.append(f"action {action_id} is not one of this ticket's")
        return
    verb = "approved" if approved else "rejected"
    if _try(out, lambda: review_actions.decide_in(s, action_id, reviewer, approved=approved, reason=reason),
            f"action {action_id} ({action.tool}) {verb} by {reviewer}"):
        if action.draft_id not in handled.resume:
            handled.resume.append(action.draft_id)


def _shown_before(s: Session, draft: Draft, event: HelpdeskEvent) -> bool:
    """A rep approves what they saw: the draft's note was on the ticket before the tag came."""
    return any(at is not None and at <= event.received_at for at in stored.notes_posted_at(s, draft.id or 0))


def _posted_ids(s: Session, draft: Draft | None) -> set[str]:
    return set() if draft is None else stored.comment_ids(s, draft.id or 0)


def _reason(ticket: Ticket, desk: HelpdeskSettings, actor: Person | None, tags: tuple[str, ...], *,
            after: set[str]) -> str:
    """The rep's newest internal note since our note on the draft (by the rep who added the tag,
    where the helpdesk says who), else a reason that says none was written."""
    turns = list(ticket.turns)
    start = max((i + 1 for i, t in enumerate(turns) if t.id in after), default=0)
    notes = [t for t in turns[start:] if t.role is Role.AGENT and not t.public and not t.draft and t.text.strip()
             and (actor is None or t.author_id == actor.id)]
    if notes:
        return notes[-1].text.strip()[:2000]
    return f"rejected in {desk.kind} with the tag {', '.join(tags)} (no reason written in a note)"


def _note(s: Session, handled: Handled, name: str, ticket_id: str, conversation_id: int, done: list[str],
          refused: list[str], remove: tuple[str, ...]) -> None:
    """What a rep's tags did, as an internal note that also removes them."""
    items = [f"<li>{escape(d)}</li>" for d in done] + [f"<li>not done: {escape(r)}</li>" for r in refused]
    html = f"<p><strong>mailagent</strong></p><ul>{''.join(items)}</ul>"
    post = helpdesk.queue_post(s, name, ticket_id, "note", html, remove_tags=tuple(dict.fromkeys(remove)),
                               conversation_id=conversation_id)
    handled.posts.append(post.id or 0)
