"""A ticket: one customer turn to answer, as the pipeline reads it, in one read transaction.

The drafting stage claims the turn's draft with a lease (`claim`), reads everything the agent and
the policy need once (`Ticket`), and hands that down; nothing below it queries again for the same
facts. The counts that caps depend on are read again inside the decision's own transaction
(`Counts`), where they cannot change under it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import case, func, insert, or_, update
from sqlmodel import Session, col, select

from mailagent.store.models import (
    Action,
    ActionState,
    Conversation,
    Draft,
    DraftState,
    HelpdeskPost,
    Message,
    MessageState,
    Outbound,
    now,
)

HISTORY = 10                 # earlier turns the agent sees
TEAM_KINDS = ("rep", "own")  # helpdesk turns by a rep, and our own posts read back from the ticket


@dataclass(frozen=True)
class HistoryItem:
    who: str                 # "customer" | "us"
    at: datetime
    text: str


@dataclass(frozen=True)
class Verdict:
    """A decided proposal, for the paused run that waits on it."""

    approved: bool
    decided_by: str


@dataclass(frozen=True)
class Ticket:
    """Everything known about one customer turn when its draft is claimed."""

    draft_id: int
    attempts: int                               # claims so far, this one included
    conversation_id: int
    mailbox: str | None                         # config name of the mailbox it came to
    customer_addr: str                          # the conversation's customer of record
    customer_name: str
    taken_by: str | None
    message_id: int                             # the turn (a Message row) ...
    message_id_header: str | None               # ... its Message-ID and References headers
    references: tuple[str, ...]
    kind: str                                   # mail.loops kind: normal, auto_reply, bounce ...
    parse_error: str | None
    from_name: str
    from_addr: str
    reply_to: str
    subject: str
    text: str                                   # the new text of the turn (quotes stripped)
    hidden_text: str
    quoted_text: str
    attachment_names: tuple[str, ...]
    history: tuple[HistoryItem, ...]
    first_contact: bool
    run_state: str | None = None                # a paused run to resume ...
    verdicts: dict[str, Verdict] = field(default_factory=dict)   # ... with its proposals' verdicts
    # helpdesk hook (issue 9): where the conversation lives
    channel: str = "email"                      # email | zendesk | helpscout
    helpdesk: str | None = None                 # [helpdesks.NAME] of a helpdesk ticket ...
    ticket_ref: str | None = None               # ... and the helpdesk's ticket id
    # who sent the turn (mail.auth, recorded at classify): a From header alone proves nothing
    sender_authenticated: bool | None = None
    sender_auth_method: str = ""
    sender_auth_domain: str = ""
    sender_auth_reason: str = ""

    @property
    def answerable(self) -> bool:
        """Something a model can read and a person would answer."""
        return self.kind == "normal" and not self.parse_error


def newest_turn(s: Session, conversation_id: int) -> int | None:
    """The message a conversation's next draft answers: its newest processed message from the
    customer. Automated mail that shares the thread (an out-of-office, a bounce) never hides a
    customer's question; when nothing but automated mail is there, the newest of that (its draft
    is ignored, so it is never answered)."""
    customer_first = case((Message.kind == "normal", 0), else_=1)
    return s.exec(select(Message.id)
                  .where(Message.conversation_id == conversation_id, Message.state == MessageState.PROCESSED)
                  .order_by(customer_first, col(Message.id).desc()).limit(1)).first()


def claim_new(s: Session, conversation_id: int, owner: str, lease: timedelta) -> tuple[int, int] | None:
    """Create the draft of the conversation's newest turn, or take over one whose holder's lease
    ran out; (draft id, attempts), or None when the turn is answered or being answered."""
    turn = newest_turn(s, conversation_id)
    if turn is None:
        return None
    existing = s.exec(select(Draft.id, Draft.state)
                      .where(Draft.conversation_id == conversation_id, Draft.message_id == turn)).first()
    if existing is None:
        created = s.execute(insert(Draft).values(
            conversation_id=conversation_id, message_id=turn, lease_owner=owner, lease_until=now() + lease,
            attempts=1, cited=[], flags=[], reasons=[], facts={}, usage={}).returning(Draft.id)).scalar_one()
        return created, 1
    if existing.state != DraftState.DRAFTING:
        return None
    return _take_over(s, existing.id, DraftState.DRAFTING, owner, lease)


def claim_resume(s: Session, draft_id: int, owner: str, lease: timedelta) -> tuple[int, int] | None:
    """Take a paused draft whose proposals are all decided (or one whose resuming holder died)."""
    row = s.exec(select(Draft.state, Draft.run_state).where(Draft.id == draft_id)).first()
    if row is None or not row.run_state or row.state not in (DraftState.WAITING, DraftState.DRAFTING):
        return None
    pending = s.exec(select(func.count()).select_from(Action).where(
        Action.draft_id == draft_id, Action.state == ActionState.PROPOSED)).one()
    if pending:
        return None
    return _take_over(s, draft_id, row.state, owner, lease)


def _take_over(s: Session, draft_id: int, state: DraftState, owner: str, lease: timedelta) -> tuple[int, int] | None:
    t = now()
    free = or_(col(Draft.lease_until).is_(None), col(Draft.lease_until) < t) if state == DraftState.DRAFTING \
        else Draft.state == DraftState.WAITING
    taken = s.execute(
        update(Draft).where(Draft.id == draft_id, Draft.state == state, free)
        .values(state=DraftState.DRAFTING, lease_owner=owner, lease_until=t + lease, started_at=t,
                attempts=Draft.attempts + 1)
        .returning(Draft.attempts)
    ).first()
    return (draft_id, taken[0]) if taken else None


def renew(s: Session, draft_id: int, owner: str, lease: timedelta) -> bool:
    """Extend the holder's lease; False when it lost the draft (someone took it over)."""
    return bool(s.execute(update(Draft).where(Draft.id == draft_id, Draft.lease_owner == owner,
                                              Draft.state == DraftState.DRAFTING)
                          .values(lease_until=now() + lease)).rowcount)


def failed(s: Session, draft_id: int, owner: str, error: str) -> None:
    """An attempt failed: keep its error and free the claim for the next attempt at once."""
    s.execute(update(Draft).where(Draft.id == draft_id, Draft.lease_owner == owner, Draft.state == DraftState.DRAFTING)
              .values(error=error, lease_owner=None, lease_until=None))


def release(s: Session, draft_id: int, owner: str, state: DraftState) -> None:
    """Give the draft back (to `waiting`, or still `drafting` to be retried at once)."""
    s.execute(update(Draft).where(Draft.id == draft_id, Draft.lease_owner == owner, Draft.state == DraftState.DRAFTING)
              .values(state=state, lease_owner=None, lease_until=None))


def load(s: Session, draft_id: int, attempts: int) -> Ticket:
    """The ticket of a claimed draft, read once."""
    d = s.exec(select(
        Draft.run_state, Conversation.id, Conversation.mailbox, Conversation.customer_addr,
        Conversation.customer_name, Conversation.taken_by, Message.id.label("turn"), Message.message_id,
        Message.references, Message.kind, Message.parse_error, Message.from_name, Message.from_addr,
        Message.reply_to, Message.subject, Message.reply_text, Message.text, Message.hidden_text,
        Message.quoted_text, Message.attachments,
        Conversation.channel, Conversation.helpdesk, Conversation.ticket_id,     # helpdesk hook (issue 9)
        Message.sender_authenticated, Message.sender_auth_method, Message.sender_auth_domain,
        Message.sender_auth_reason,
    ).join(Conversation, Conversation.id == Draft.conversation_id).join(Message, Message.id == Draft.message_id)
        .where(Draft.id == draft_id)).one()
    earlier = s.exec(select(Message.received_at, Message.reply_text, Message.text, Message.kind, Message.source)
                     .where(Message.conversation_id == d.id, Message.id != d.turn)).all()
    sent = s.exec(select(Outbound.created_at, Outbound.body_text).where(Outbound.conversation_id == d.id)).all()
    other_conversations = s.exec(select(func.count()).select_from(Conversation).where(
        Conversation.customer_addr == d.customer_addr, Conversation.id != d.id)).one()
    history = sorted([HistoryItem("customer", m.received_at, m.reply_text or m.text) for m in earlier
                      if m.kind == "normal"] + [HistoryItem("us", o.created_at, o.body_text) for o in sent]
                     # helpdesk hook (issue 9): public replies by reps and by us, read back from the ticket
                     + [HistoryItem("us", m.received_at, m.text) for m in earlier
                        if m.source == "helpdesk" and m.kind in TEAM_KINDS],
                     key=lambda h: h.at)
    verdicts: dict[str, Verdict] = {}
    if d.run_state:
        for a in s.exec(select(Action.call_id, Action.state, Action.decided_by).where(Action.draft_id == draft_id)):
            verdicts[a.call_id] = Verdict(a.state != ActionState.REJECTED, a.decided_by or "")
    return Ticket(
        draft_id=draft_id, attempts=attempts, conversation_id=d.id, mailbox=d.mailbox,
        customer_addr=d.customer_addr, customer_name=d.customer_name, taken_by=d.taken_by, message_id=d.turn,
        message_id_header=d.message_id, references=tuple(d.references), kind=d.kind or "normal",
        parse_error=d.parse_error, from_name=d.from_name, from_addr=d.from_addr, reply_to=d.reply_to,
        subject=d.subject, text=d.reply_text or d.text, hidden_text=d.hidden_text, quoted_text=d.quoted_text,
        attachment_names=tuple(a.get("filename") or "" for a in d.attachments),
        history=tuple(history[-HISTORY:]), first_contact=other_conversations == 0 and not earlier,
        run_state=d.run_state, verdicts=verdicts,
        channel=d.channel, helpdesk=d.helpdesk, ticket_ref=d.ticket_id,
        sender_authenticated=d.sender_authenticated, sender_auth_method=d.sender_auth_method,
        sender_auth_domain=d.sender_auth_domain, sender_auth_reason=d.sender_auth_reason,
    )


@dataclass(frozen=True)
class Counts:
    """What caps and action facts need, read inside the decision's transaction."""

    auto_sends_customer_today: int
    auto_sends_conversation: int
    actions: tuple[Action, ...]


def counts(s: Session, ticket: Ticket) -> Counts:
    automatic = select(func.count()).select_from(Outbound).where(col(Outbound.approved_by).is_(None))
    today = automatic.join(Conversation).where(Conversation.customer_addr == ticket.customer_addr,
                                               Outbound.created_at >= now() - timedelta(days=1))
    in_conversation = automatic.where(Outbound.conversation_id == ticket.conversation_id)
    actions = tuple(s.exec(select(Action).where(Action.draft_id == ticket.draft_id)))
    # helpdesk hook (issue 9): replies auto-posted to a helpdesk count against the same caps
    posted = select(func.count()).select_from(HelpdeskPost).where(HelpdeskPost.kind == "reply",
                                                                  col(HelpdeskPost.approved_by).is_(None))
    posted_today = posted.join(Conversation).where(Conversation.customer_addr == ticket.customer_addr,
                                                   HelpdeskPost.created_at >= now() - timedelta(days=1))
    here = posted.where(HelpdeskPost.conversation_id == ticket.conversation_id) if ticket.helpdesk else in_conversation
    return Counts(s.exec(today).one() + s.exec(posted_today).one(), s.exec(here).one(), actions)


def executed(s: Session, draft_id: int) -> list[Action]:
    """The actions of a draft that really ran."""
    return list(s.exec(select(Action).where(Action.draft_id == draft_id, Action.state == ActionState.EXECUTED)))
