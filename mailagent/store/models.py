"""Tables. Each row carries its own state; actors move a state forward in one transaction, so a
redelivered broker message finds the work already done and does nothing."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, LargeBinary, UniqueConstraint
from sqlmodel import AutoString, Field, SQLModel


def now() -> datetime:
    return datetime.now(UTC)


class Mutex(SQLModel, table=True):
    """Named rows to lock when a step must run alone (see `db.lock`)."""

    name: str = Field(primary_key=True)


class MailboxCursor(SQLModel, table=True):
    """How far a mailbox folder has been read, and who is reading it now (a lease)."""

    __tablename__ = "mailbox_cursor"
    mailbox: str = Field(primary_key=True)
    folder: str
    uidvalidity: int | None = None
    last_uid: int = 0
    locked_by: str | None = None
    locked_until: datetime | None = None
    rerun: bool = False                             # a poll arrived while locked: poll once more
    last_poll_at: datetime | None = None
    last_error: str | None = None


class MessageState(StrEnum):
    STORED = "stored"          # raw bytes and envelope kept; not parsed yet
    PROCESSED = "processed"    # parsed (or parse_error set), classified, threaded


class Message(SQLModel, table=True):
    """An inbound message, raw bytes kept exactly as received. What the fetch loop does not
    know yet (sender, subject, text ...) starts as a database default, filled in by `inbound`."""

    id: int | None = Field(default=None, primary_key=True)
    dedup_key: str = Field(unique=True)
    message_id: str | None = Field(default=None, index=True)
    sha256: str
    raw: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    source: str                                     # imap | pipe | file
    mailbox: str | None = None
    imap_uid: int | None = None
    imap_uidvalidity: int | None = None
    from_name: str = Field(default="", sa_column_kwargs={"server_default": ""})
    from_addr: str = Field(default="", sa_column_kwargs={"server_default": ""})
    reply_to: str = Field(default="", sa_column_kwargs={"server_default": ""})
    subject: str = Field(default="", sa_column_kwargs={"server_default": ""})
    sent_at: datetime | None = None
    in_reply_to: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False, server_default="[]"))
    references: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False, server_default="[]"))
    received_at: datetime = Field(default_factory=now, index=True)
    duplicates: int = Field(default=0, sa_column_kwargs={"server_default": "0"})  # later deliveries
    state: MessageState = Field(default=MessageState.STORED, index=True, sa_type=AutoString)
    kind: str | None = None                         # mail.loops.Kind, once processed
    kind_reason: str = Field(default="", sa_column_kwargs={"server_default": ""})
    parse_error: str | None = None
    text: str = Field(default="", sa_column_kwargs={"server_default": ""})
    reply_text: str = Field(default="", sa_column_kwargs={"server_default": ""})
    hidden_text: str = Field(default="", sa_column_kwargs={"server_default": ""})
    quoted_text: str = Field(default="", sa_column_kwargs={"server_default": ""})
    signature: str = Field(default="", sa_column_kwargs={"server_default": ""})
    attachments: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False, server_default="[]"))
    defects: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False, server_default="[]"))
    conversation_id: int | None = Field(default=None, foreign_key="conversation.id", index=True)
    processed_at: datetime | None = None


class Conversation(SQLModel, table=True):
    """One thread with one customer in one mailbox."""

    id: int | None = Field(default=None, primary_key=True)
    mailbox: str | None = Field(default=None, index=True)
    customer_addr: str = Field(index=True)
    customer_name: str = ""
    subject: str = ""
    subject_key: str = Field(default="", index=True)
    state: str = "open"
    taken_by: str | None = None                     # a rep who took over: no auto-sends
    created_at: datetime = Field(default_factory=now)
    last_message_at: datetime = Field(default_factory=now)


class OutboundState(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    UNKNOWN = "unknown"        # the server may or may not have taken it: a human decides


class Outbound(SQLModel, table=True):
    """A reply in the outbox, composed once (so every attempt sends the same bytes)."""

    id: int | None = Field(default=None, primary_key=True)
    conversation_id: int = Field(foreign_key="conversation.id", index=True)
    reply_to_message_id: int | None = Field(default=None, foreign_key="message.id")
    mailbox: str
    message_id: str = Field(unique=True)
    sender: str
    recipients: list[str] = Field(sa_column=Column(JSON, nullable=False))
    subject: str
    body_text: str
    raw: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    approved_by: str | None = None                  # None: nobody approved it (auto-submitted)
    state: OutboundState = Field(default=OutboundState.QUEUED, index=True, sa_type=AutoString)
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=now)
    sending_started_at: datetime | None = None
    last_error: str | None = None
    smtp_response: str | None = None
    refused: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=now)
    sent_at: datetime | None = None
    saved_to_sent: bool = False


class Article(SQLModel, table=True):
    """A knowledge-base article, synced from `knowledge/*.md` (the files are the source)."""

    id: str = Field(primary_key=True)               # file stem, e.g. "password-reset.en"
    title: str
    tags: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    locale: str = Field(index=True)
    updated: str = ""                               # ISO date from the front matter
    intent: str = ""                                # the intent it answers, from the front matter
    body: str
    path: str
    sha256: str
    synced_at: datetime = Field(default_factory=now)


class DraftState(StrEnum):
    DRAFTING = "drafting"      # the agent is working on it
    HELD = "held"              # waits for a rep (review queue)
    ESCALATED = "escalated"    # handed to a human team, no reply drafted for sending
    SENT = "sent"              # its reply is in the outbox (auto-sent or approved)
    REJECTED = "rejected"      # a rep said no
    IGNORED = "ignored"        # nothing to answer (automated mail, policy)
    SUPERSEDED = "superseded"  # a newer customer message arrived: a new draft replaces it
    WAITING = "waiting"        # the agent proposed actions: waits for their approval, then resumes


class Draft(SQLModel, table=True):
    """One draft per customer turn: the agent's proposal, the policy's decision, the rep's verdict."""

    __table_args__ = (UniqueConstraint("conversation_id", "message_id"),)
    id: int | None = Field(default=None, primary_key=True)
    conversation_id: int = Field(foreign_key="conversation.id", index=True)
    message_id: int = Field(foreign_key="message.id")   # the customer turn it answers
    state: DraftState = Field(default=DraftState.DRAFTING, index=True, sa_type=AutoString)
    text: str = ""
    confidence: float = 0.0
    intent: str = ""
    language: str = ""
    needs_human: bool = False
    needs_human_reason: str = ""
    cited: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    flags: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    decision: str | None = None                     # send | hold | escalate | ignore
    shadow: bool = False                            # held, but the policy would have sent it
    rule: str | None = None
    policy_version: str = ""
    reasons: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    facts: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    model: str = ""
    prompt_version: str = ""
    usage: dict[str, int] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    trace_id: str | None = Field(default=None, index=True)
    error: str | None = None
    run_state: str | None = None                    # a paused agent run (RunState JSON), kept server-side
    outbound_id: int | None = Field(default=None, foreign_key="outbound.id")
    reviewed_by: str | None = None
    final_text: str | None = None                   # what was sent after a rep's edit
    reject_reason: str | None = None
    created_at: datetime = Field(default_factory=now)
    started_at: datetime = Field(default_factory=now)   # of the current attempt (a crash restarts it)
    decided_at: datetime | None = None
    reviewed_at: datetime | None = None


class Feedback(SQLModel, table=True):
    """A rep's verdict on a draft: the draft-versus-final pair the learning loop learns from."""

    id: int | None = Field(default=None, primary_key=True)
    draft_id: int = Field(foreign_key="draft.id", index=True)
    conversation_id: int = Field(foreign_key="conversation.id")
    verdict: str                                    # approved | edited | rejected
    draft_text: str
    final_text: str | None = None
    reason: str | None = None
    reviewer: str
    created_at: datetime = Field(default_factory=now)


class TraceRecord(SQLModel, table=True):
    """An agent run's trace, stored locally (never exported unless configured)."""

    __tablename__ = "trace"
    id: str = Field(primary_key=True)
    workflow: str = ""
    group_id: str | None = Field(default=None, index=True)    # the conversation id
    started_at: datetime = Field(default_factory=now)
    ended_at: datetime | None = None
    meta: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class SpanRecord(SQLModel, table=True):
    """One step of a trace: agent, model call, tool call, guardrail, policy decision."""

    __tablename__ = "span"
    id: str = Field(primary_key=True)
    trace_id: str = Field(index=True)
    parent_id: str | None = None
    kind: str
    name: str = ""
    started_at: datetime | None = None
    ended_at: datetime | None = None
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    error: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))


class ActionState(StrEnum):
    PROPOSED = "proposed"      # the agent asked; a rep (or a policy rule) must decide
    APPROVED = "approved"      # may run, once
    REJECTED = "rejected"
    EXECUTED = "executed"
    FAILED = "failed"


class Action(SQLModel, table=True):
    """A tool call with side effects the agent proposed: decided, then executed at most once.

    The idempotency key is derived from the proposal (draft, call and arguments), never from an
    attempt, so a retried or duplicated execution reaches the backend as a replay."""

    id: int | None = Field(default=None, primary_key=True)
    draft_id: int = Field(foreign_key="draft.id", index=True)
    conversation_id: int = Field(foreign_key="conversation.id", index=True)
    call_id: str
    tool: str
    arguments: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    amount: float | None = None
    currency: str | None = None
    customer: str = ""                              # the customer's address, for per-customer limits
    idempotency_key: str = Field(unique=True)
    state: ActionState = Field(default=ActionState.PROPOSED, index=True, sa_type=AutoString)
    decided_by: str | None = None                   # a rep, or "policy:<rule>"
    reasons: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    result: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    error: str | None = None
    created_at: datetime = Field(default_factory=now)
    decided_at: datetime | None = None
    executed_at: datetime | None = None


class AuditEntry(SQLModel, table=True):
    """Append-only: who did what, when, with which arguments and outcome (the database refuses
    updates and deletes of these rows)."""

    __tablename__ = "audit_log"
    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=now, index=True)
    actor: str                                      # a rep, "policy:<rule>", "agent" or "system"
    event: str                                      # proposed | approved | rejected | executed | failed | taken | released ...
    conversation_id: int | None = Field(default=None, index=True)
    draft_id: int | None = None
    action_id: int | None = Field(default=None, index=True)
    details: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


# --- the demo backend: sample company data that the action tools read and change ------------------

class DemoCustomer(SQLModel, table=True):
    __tablename__ = "demo_customer"
    id: str = Field(primary_key=True)
    email: str = Field(unique=True)
    name: str
    tier: str
    company: str = ""
    country: str = ""
    created: str = ""


class DemoSubscription(SQLModel, table=True):
    __tablename__ = "demo_subscription"
    id: str = Field(primary_key=True)
    customer_id: str = Field(foreign_key="demo_customer.id", index=True)
    plan: str
    seats: int
    interval: str
    status: str
    renews_on: str = ""
    price_eur: float = 0.0


class DemoOrder(SQLModel, table=True):
    __tablename__ = "demo_order"
    id: str = Field(primary_key=True)
    customer_id: str = Field(foreign_key="demo_customer.id", index=True)
    date: str
    amount: float
    currency: str
    description: str = ""
    status: str
    refunded: float = 0.0


class DemoInvoice(SQLModel, table=True):
    __tablename__ = "demo_invoice"
    id: str = Field(primary_key=True)
    order_id: str = Field(foreign_key="demo_order.id", index=True)
    customer_id: str = Field(foreign_key="demo_customer.id", index=True)
    date: str
    amount: float
    currency: str
    url: str
    resent: int = 0


class DemoIncident(SQLModel, table=True):
    __tablename__ = "demo_incident"
    id: str = Field(primary_key=True)
    title: str
    status: str
    started_at: datetime
    resolved_at: datetime | None = None
    components: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    public_update: str = ""


class DemoOperation(SQLModel, table=True):
    """The demo backend's idempotency record: a replayed key returns the first response."""

    __tablename__ = "demo_operation"
    idempotency_key: str = Field(primary_key=True)
    operation: str
    request_sha256: str
    response: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=now)
