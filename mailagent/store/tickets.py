"""A ticket: one customer turn to answer, as the pipeline reads it, in one read transaction.

The drafting stage claims the turn's draft with a lease (`claim`), reads everything the agent and
the policy need once (`Ticket`), and hands that down; nothing below it queries again for the same
facts. The counts that caps depend on are read again inside the decision's own transaction
(`Counts`), where they cannot change under it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, or_, update
from sqlmodel import Session, col, select

from mailagent.store.models import (
    Action,
    ActionState,
    Conversation,
    Draft,
    DraftState,
    Message,
    MessageState,
    Outbound,
    now,
)

HISTORY = 10                 # earlier turns the agent sees


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
    message_id: int                             # the turn (a Message row)
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

    @property
    def answerable(self) -> bool:
        """Something a model can read and a person would answer."""
        return self.kind == "normal" and not self.parse_error


def newest_turn(s: Session, conversation_id: int) -> Message | None:
    """The turn a conversation's next draft answers: its newest processed message from the
    customer. Automated mail that shares the thread (an out-of-office, a bounce) never hides a
    customer's question; when nothing but automated mail is there, the newest of that (its draft
    is ignored, so it is never answered)."""
    processed = (select(Message).where(Message.conversation_id == conversation_id,
                                       Message.state == MessageState.PROCESSED)
                 .order_by(col(Message.id).desc()))
    return s.exec(processed.where(Message.kind == "normal")).first() or s.exec(processed).first()


def claim_new(s: Session, conversation_id: int, owner: str, lease: timedelta) -> tuple[int, int] | None:
    """Create the draft of the conversation's newest turn, or take over one whose holder's lease
    ran out; (draft id, attempts), or None when the turn is answered or being answered."""
    turn = newest_turn(s, conversation_id)
    if turn is None:
        return None
    existing = s.exec(select(Draft.id, Draft.state, Draft.run_state)
                      .where(Draft.conversation_id == conversation_id, Draft.message_id == turn.id)).first()
    t = now()
    if existing is None:
        draft = Draft(conversation_id=conversation_id, message_id=turn.id or 0, lease_owner=owner,
                      lease_until=t + lease, attempts=1)
        s.add(draft)
        s.flush()
        return draft.id or 0, 1
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


def release(s: Session, draft_id: int, owner: str, state: DraftState) -> None:
    """Give the draft back (to `waiting`, or still `drafting` to be retried at once)."""
    s.execute(update(Draft).where(Draft.id == draft_id, Draft.lease_owner == owner, Draft.state == DraftState.DRAFTING)
              .values(state=state, lease_owner=None, lease_until=None))


def load(s: Session, draft_id: int, attempts: int) -> Ticket:
    """The ticket of a claimed draft, read once."""
    draft = s.get(Draft, draft_id)
    assert draft is not None
    conversation = s.get(Conversation, draft.conversation_id)
    turn = s.get(Message, draft.message_id)
    assert conversation is not None and turn is not None
    earlier = s.exec(select(Message.id, Message.received_at, Message.reply_text, Message.text, Message.kind)
                     .where(Message.conversation_id == conversation.id, Message.id != turn.id)).all()
    sent = s.exec(select(Outbound.created_at, Outbound.body_text)
                  .where(Outbound.conversation_id == conversation.id)).all()
    other_conversations = s.exec(select(func.count()).select_from(Conversation).where(
        Conversation.customer_addr == conversation.customer_addr, Conversation.id != conversation.id)).one()
    history = sorted([HistoryItem("customer", m.received_at, m.reply_text or m.text) for m in earlier
                      if m.kind == "normal"] + [HistoryItem("us", o.created_at, o.body_text) for o in sent],
                     key=lambda h: h.at)
    verdicts: dict[str, Verdict] = {}
    if draft.run_state:
        for a in s.exec(select(Action.call_id, Action.state, Action.decided_by)
                        .where(Action.draft_id == draft_id)):
            verdicts[a.call_id] = Verdict(a.state != ActionState.REJECTED, a.decided_by or "")
    return Ticket(
        draft_id=draft_id, attempts=attempts, conversation_id=conversation.id or 0, mailbox=conversation.mailbox,
        customer_addr=conversation.customer_addr, customer_name=conversation.customer_name,
        taken_by=conversation.taken_by, message_id=turn.id or 0, kind=turn.kind or "normal",
        parse_error=turn.parse_error, from_name=turn.from_name, from_addr=turn.from_addr, reply_to=turn.reply_to,
        subject=turn.subject, text=turn.reply_text or turn.text, hidden_text=turn.hidden_text,
        quoted_text=turn.quoted_text,
        attachment_names=tuple(a.get("filename") or "" for a in turn.attachments),
        history=tuple(history[-HISTORY:]), first_contact=other_conversations == 0 and not earlier,
        run_state=draft.run_state, verdicts=verdicts,
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
    return Counts(s.exec(today).one(), s.exec(in_conversation).one(), actions)


def executed(s: Session, draft_id: int) -> list[Action]:
    """The actions of a draft that really ran."""
    return list(s.exec(select(Action).where(Action.draft_id == draft_id, Action.state == ActionState.EXECUTED)))
