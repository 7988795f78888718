"""Mail in and out: messages with their raw bytes, conversations, the outbox, mailbox cursors."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, LargeBinary, UniqueConstraint
from sqlmodel import AutoString, Field, SQLModel

from mailagent.store.models.base import now


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
    FAILED = "failed"          # processing kept failing (a poison message): `error` says why


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
    # Who sent it (mail.auth): None until checked; a From header alone proves nothing.
    sender_authenticated: bool | None = None
    sender_auth_method: str = Field(default="", sa_column_kwargs={"server_default": ""})
    sender_auth_domain: str = Field(default="", sa_column_kwargs={"server_default": ""})
    sender_auth_reason: str = Field(default="", sa_column_kwargs={"server_default": ""})
    conversation_id: int | None = Field(default=None, foreign_key="conversation.id", index=True)
    processed_at: datetime | None = None
    attempts: int = Field(default=0, sa_column_kwargs={"server_default": "0"})   # processing claims so far
    error: str | None = None                        # why the last processing attempt failed


class Conversation(SQLModel, table=True):
    """One thread with one customer in one mailbox, or one helpdesk ticket (`helpdesk`, `ticket_id`)."""

    __table_args__ = (UniqueConstraint("helpdesk", "ticket_id", name="uq_conversation_helpdesk_ticket"),)
    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(default="email", sa_column_kwargs={"server_default": "email"})  # email | zendesk | helpscout
    helpdesk: str | None = None                     # the [helpdesks.NAME] of a helpdesk ticket ...
    ticket_id: str | None = None                    # ... and the helpdesk's id of the ticket
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
    smtp_phase: str | None = None                   # how far the last attempt got (mail.smtp.Phase) ...
    smtp_last_reply: str | None = None              # ... and the server's last answer there
    created_at: datetime = Field(default_factory=now)
    sent_at: datetime | None = None
    saved_to_sent: bool = False
    resolved_by: str | None = None                  # a rep who settled an unknown outcome by hand
    resolved_at: datetime | None = None
