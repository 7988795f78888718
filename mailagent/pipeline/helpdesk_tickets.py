"""A helpdesk ticket, read back through the API, as a conversation: its new public turns (see
`helpdesks.conversation`) stored as messages, once each, in the ticket's order. Each message keeps
the comment's JSON as the API returned it (`raw`), its rendered text and, apart, the text its
markup hid; nothing a comment's HTML says is ever rendered. Which posts are ours comes from our
own ledger (the comment ids the helpdesk gave our posts, our markers), never from what a comment
says about itself."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from mailagent.helpdesks.base import Ticket, Turn
from mailagent.helpdesks.conversation import new_turns
from mailagent.store import helpdesk as stored
from mailagent.store.db import Session
from mailagent.store.models import (
    Conversation,
    HelpdeskPost,
    HelpdeskPostState,
    Message,
    MessageState,
    now,
)


class Busy(Exception):
    """A post of ours to this ticket is in flight: a new reply under a rep's name may be it, and
    cannot be told apart until that post is settled. Handle the event again later."""


@dataclass(frozen=True)
class TeamTurn:
    """A public reply by a rep, stored now (`message_id`). `draft_id` when it is the draft reply
    we posted for that draft, sent by the rep (Help Scout)."""

    message_id: int
    turn: Turn
    draft_id: int | None = None


@dataclass
class Synced:
    conversation: Conversation
    customer: list[int] = field(default_factory=list)        # customer turns stored now (message ids)
    team: list[TeamTurn] = field(default_factory=list)       # reps' replies stored now, oldest first
    ours: int = 0                                            # our own posts read back

    @property
    def summary(self) -> str:
        parts = [f"{len(self.customer)} new customer turn(s)" if self.customer else "",
                 f"{len(self.team)} new rep reply(ies)" if self.team else "",
                 f"{self.ours} post(s) of ours read back" if self.ours else ""]
        return ", ".join(p for p in parts if p) or "nothing new"


def dedup_key(helpdesk: str, ticket_id: str, comment_id: str) -> str:
    return f"{helpdesk}:{ticket_id}:{comment_id}"


def sync(s: Session, helpdesk: str, kind: str, ticket: Ticket) -> Synced:
    """Store the ticket's public turns not stored yet, in the caller's transaction (which holds
    the ticket's lock). Raises `Busy` before writing anything when a new rep reply may be a post
    of ours in flight."""
    conversation = stored.conversation_of(s, helpdesk, ticket.id)
    stored_ids: set[str] = set()
    if conversation is not None:
        stored_ids = {k.rpartition(":")[2] for k in stored.stored_keys(s, conversation.id or 0)}
    posts = stored.posts_to(s, helpdesk, ticket.id)
    new = new_turns(ticket, stored_ids, _ours(posts, drafts=False), _ours(posts, drafts=True))
    if any(p.state == HelpdeskPostState.POSTING for p in posts) and any(
            t.kind == "rep" and t.draft_id is None for t in new):
        raise Busy(f"a post to ticket {ticket.id} is in flight")
    if conversation is None:
        started = ticket.turns[0].created_at if ticket.turns else now()
        conversation = Conversation(channel=kind, helpdesk=helpdesk, ticket_id=ticket.id, mailbox=None,
                                    customer_addr=ticket.requester_email.strip().lower(),
                                    customer_name=ticket.requester_name, subject=ticket.subject,
                                    created_at=started, last_message_at=started)
        s.add(conversation)
        s.flush()
    synced = Synced(conversation)
    for new_turn in new:
        message = _message(helpdesk, ticket, new_turn.turn, new_turn.kind, conversation.id or 0)
        s.add(message)
        s.flush()
        conversation.last_message_at = max(conversation.last_message_at, new_turn.turn.created_at)
        if new_turn.kind == "normal":
            synced.customer.append(message.id or 0)
        elif new_turn.kind == "rep":
            synced.team.append(TeamTurn(message.id or 0, new_turn.turn, new_turn.draft_id))
        else:
            synced.ours += 1
    return synced


def _ours(posts: list[HelpdeskPost], *, drafts: bool) -> dict[str, int | None]:
    """Comment ids (`id:<id>`) and markers of our posts -> their draft: draft replies, or the rest."""
    found: dict[str, int | None] = {}
    for p in posts:
        if (p.kind == "draft") != drafts:
            continue
        found[p.marker] = p.draft_id
        if p.state == HelpdeskPostState.POSTED and p.comment_id:
            found[f"id:{p.comment_id}"] = p.draft_id
    return found


def _message(helpdesk: str, ticket: Ticket, turn: Turn, kind: str, conversation_id: int) -> Message:
    raw = turn.raw or turn.html.encode()
    reason = {"normal": "", "rep": f"a public reply by {helpdesk} user {turn.author_id}",
              "own": "our own post, read back from the helpdesk"}[kind]
    return Message(
        dedup_key=dedup_key(helpdesk, ticket.id, turn.id), message_id=None, sha256=hashlib.sha256(raw).hexdigest(),
        raw=raw, source="helpdesk", mailbox=None, from_name=turn.author_name, from_addr=turn.author_email.lower(),
        subject=ticket.subject, sent_at=turn.created_at, received_at=turn.created_at, state=MessageState.PROCESSED,
        kind=kind, kind_reason=reason, text=turn.text, reply_text=turn.text, hidden_text=turn.hidden,
        # no mail headers to authenticate: who wrote it is the helpdesk's word (left undecided)
        sender_authenticated=None, sender_auth_method="helpdesk",
        sender_auth_reason=f"a {helpdesk} comment: the helpdesk names its author; no DMARC verdict",
        conversation_id=conversation_id, processed_at=now())

