"""A ticket: one customer turn to answer, as the pipeline reads it, in one read transaction.

The drafting stage claims the turn's draft with a lease (`claim`), reads everything the agent and
the policy need once (`Ticket`), and hands that down; nothing below it queries again for the same
facts. The counts that caps depend on are read again inside the decision's own transaction
(`Counts`), where they cannot change under it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Row,
    Table,
    and_,
    bindparam,
    case,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlmodel import Session

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
    return s.connection().execute(_NEWEST, {"c": conversation_id}).scalar()


def claim_new(s: Session, conversation_id: int, owner: str, lease: timedelta) -> tuple[int, int] | None:
    """Create the draft of the conversation's newest turn, or take over one whose holder's lease
    ran out; (draft id, attempts), or None when the turn is answered or being answered."""
    turn = newest_turn(s, conversation_id)
    if turn is None:
        return None
    conn = s.connection()
    existing = conn.execute(_DRAFT_OF_TURN, {"c": conversation_id, "m": turn}).first()
    if existing is None:
        created = conn.execute(_NEW_DRAFT, {"c": conversation_id, "m": turn, "owner": owner,
                                            "until": now() + lease}).scalar_one()
        return created, 1
    if existing.state != DraftState.DRAFTING:
        return None
    return _take_over(s, existing.id, DraftState.DRAFTING, owner, lease)


def claim_resume(s: Session, draft_id: int, owner: str, lease: timedelta) -> tuple[int, int] | None:
    """Take a paused draft whose proposals are all decided (or one whose resuming holder died)."""
    conn = s.connection()
    row = conn.execute(_PAUSED, {"d": draft_id}).first()
    if row is None or not row.run_state or row.state not in (DraftState.WAITING, DraftState.DRAFTING):
        return None
    if conn.execute(_PENDING, {"d": draft_id}).scalar():
        return None
    return _take_over(s, draft_id, DraftState(row.state), owner, lease)


def _take_over(s: Session, draft_id: int, state: DraftState, owner: str, lease: timedelta) -> tuple[int, int] | None:
    t = now()
    statement = _TAKE_EXPIRED if state == DraftState.DRAFTING else _TAKE_WAITING
    taken = s.connection().execute(statement, {"d": draft_id, "owner": owner, "t": t, "until": t + lease}).first()
    return (draft_id, taken[0]) if taken else None


def renew(s: Session, draft_id: int, owner: str, lease: timedelta) -> bool:
    """Extend the holder's lease; False when it lost the draft (someone took it over)."""
    return bool(s.connection().execute(_RENEW, {"d": draft_id, "owner": owner, "until": now() + lease}).rowcount)


def failed(s: Session, draft_id: int, owner: str, error: str) -> None:
    """An attempt failed: keep its error and free the claim for the next attempt at once."""
    s.connection().execute(_FAILED, {"d": draft_id, "owner": owner, "error": error})


def release(s: Session, draft_id: int, owner: str, state: DraftState) -> None:
    """Give the draft back (to `waiting`, or still `drafting` to be retried at once)."""
    s.connection().execute(_RELEASE, {"d": draft_id, "owner": owner, "state": state.value})


def load(s: Session, draft_id: int, attempts: int) -> Ticket:
    """The ticket of a claimed draft, read once."""
    conn = s.connection()
    d = conn.execute(_TICKET, {"d": draft_id}).one()
    earlier = conn.execute(_EARLIER, {"c": d.id, "turn": d.turn}).all()
    sent = conn.execute(_SENT, {"c": d.id}).all()
    other_conversations = conn.execute(_OTHER_CONVERSATIONS, {"addr": d.customer_addr, "c": d.id}).scalar_one()
    history = sorted([HistoryItem("customer", m.received_at, m.reply_text or m.text) for m in earlier
                      if m.kind == "normal"] + [HistoryItem("us", o.created_at, o.body_text) for o in sent]
                     # helpdesk hook (issue 9): public replies by reps and by us, read back from the ticket
                     + [HistoryItem("us", m.received_at, m.text) for m in earlier
                        if m.source == "helpdesk" and m.kind in TEAM_KINDS],
                     key=lambda h: h.at)
    verdicts: dict[str, Verdict] = {}
    if d.run_state:
        for a in conn.execute(_VERDICTS, {"d": draft_id}):
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
    actions: tuple[Row[Any], ...]           # the draft's actions: tool, arguments, amount, currency, decided_by, state


def counts(s: Session, ticket: Ticket) -> Counts:
    conn = s.connection()
    since = now() - timedelta(days=1)
    today, posted_today, here = conn.execute(_COUNTS_HELPDESK if ticket.helpdesk else _COUNTS, {
        "addr": ticket.customer_addr, "since": since, "c": ticket.conversation_id}).one()
    actions = tuple(conn.execute(_ACTIONS, {"d": ticket.draft_id}).all())
    return Counts(today + posted_today, here, actions)


# --- the statements, built once (SQLAlchemy Core: compiled once per engine and cached) ----------

def _table(model: Any) -> Table:
    return model.__table__  # type: ignore[no-any-return]


_m, _c, _d, _o, _a, _p = (_table(t) for t in (Message, Conversation, Draft, Outbound, Action, HelpdeskPost))

_NEWEST = (select(_m.c.id).where(_m.c.conversation_id == bindparam("c"), _m.c.state == MessageState.PROCESSED.value)
           .order_by(case((_m.c.kind == "normal", 0), else_=1), _m.c.id.desc()).limit(1))
_DRAFT_OF_TURN = select(_d.c.id, _d.c.state).where(_d.c.conversation_id == bindparam("c"),
                                                   _d.c.message_id == bindparam("m"))
_NEW_DRAFT = insert(_d).values(conversation_id=bindparam("c"), message_id=bindparam("m"), lease_owner=bindparam("owner"),
                               lease_until=bindparam("until"), attempts=1, cited=[], flags=[], reasons=[], facts={},
                               usage={}).returning(_d.c.id)
_PAUSED = select(_d.c.state, _d.c.run_state).where(_d.c.id == bindparam("d"))
_PENDING = select(func.count()).select_from(_a).where(_a.c.draft_id == bindparam("d"),
                                                      _a.c.state == ActionState.PROPOSED.value)
_TAKE = {"state": DraftState.DRAFTING.value, "lease_owner": bindparam("owner"), "lease_until": bindparam("until"),
         "started_at": bindparam("t"), "attempts": _d.c.attempts + 1}
_TAKE_EXPIRED = (update(_d).where(_d.c.id == bindparam("d"), _d.c.state == DraftState.DRAFTING.value,
                                  or_(_d.c.lease_until.is_(None), _d.c.lease_until < bindparam("t")))
                 .values(**_TAKE).returning(_d.c.attempts))
_TAKE_WAITING = (update(_d).where(_d.c.id == bindparam("d"), _d.c.state == DraftState.WAITING.value)
                 .values(**_TAKE).returning(_d.c.attempts))
_HELD_BY_OWNER = and_(_d.c.id == bindparam("d"), _d.c.lease_owner == bindparam("owner"),
                      _d.c.state == DraftState.DRAFTING.value)
_RENEW = update(_d).where(_HELD_BY_OWNER).values(lease_until=bindparam("until"))
_FAILED = update(_d).where(_HELD_BY_OWNER).values(error=bindparam("error"), lease_owner=None, lease_until=None)
_RELEASE = update(_d).where(_HELD_BY_OWNER).values(state=bindparam("state"), lease_owner=None, lease_until=None)
_TICKET = (select(
    _d.c.run_state, _c.c.id, _c.c.mailbox, _c.c.customer_addr, _c.c.customer_name, _c.c.taken_by, _m.c.id.label("turn"),
    _m.c.message_id, _m.c.references, _m.c.kind, _m.c.parse_error, _m.c.from_name, _m.c.from_addr, _m.c.reply_to,
    _m.c.subject, _m.c.reply_text, _m.c.text, _m.c.hidden_text, _m.c.quoted_text, _m.c.attachments,
    _c.c.channel, _c.c.helpdesk, _c.c.ticket_id,                                # helpdesk hook (issue 9)
    _m.c.sender_authenticated, _m.c.sender_auth_method, _m.c.sender_auth_domain, _m.c.sender_auth_reason,
).select_from(_d.join(_c, _c.c.id == _d.c.conversation_id).join(_m, _m.c.id == _d.c.message_id))
    .where(_d.c.id == bindparam("d")))
_EARLIER = select(_m.c.received_at, _m.c.reply_text, _m.c.text, _m.c.kind, _m.c.source).where(
    _m.c.conversation_id == bindparam("c"), _m.c.id != bindparam("turn"))
_SENT = select(_o.c.created_at, _o.c.body_text).where(_o.c.conversation_id == bindparam("c"))
_OTHER_CONVERSATIONS = select(func.count()).select_from(_c).where(_c.c.customer_addr == bindparam("addr"),
                                                                  _c.c.id != bindparam("c"))
_VERDICTS = select(_a.c.call_id, _a.c.state, _a.c.decided_by).where(_a.c.draft_id == bindparam("d"))
_ACTIONS = select(_a.c.tool, _a.c.arguments, _a.c.amount, _a.c.currency, _a.c.decided_by, _a.c.state).where(
    _a.c.draft_id == bindparam("d"))


def _caps(kind: Table, *automatic: Any) -> tuple[Any, Any]:
    """Auto-sent replies (no rep approved them) of `kind`: to this customer in a day, and in this conversation."""
    count = select(func.count()).select_from(kind).where(kind.c.approved_by.is_(None), *automatic)
    today = count.join(_c, _c.c.id == kind.c.conversation_id).where(
        _c.c.customer_addr == bindparam("addr"), kind.c.created_at >= bindparam("since"))
    return today.scalar_subquery(), count.where(kind.c.conversation_id == bindparam("c")).scalar_subquery()


# helpdesk hook (issue 9): replies auto-posted to a helpdesk count against the same caps
(_mail_today, _mail_here), (_posted_today, _posted_here) = _caps(_o), _caps(_p, _p.c.kind == "reply")
_COUNTS = select(_mail_today, _posted_today, _mail_here)
_COUNTS_HELPDESK = select(_mail_today, _posted_today, _posted_here)
