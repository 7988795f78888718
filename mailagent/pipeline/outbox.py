"""The outbox: every reply is a row, composed once, claimed before sending, sent at most once.

`queued -> sending -> sent | failed | unknown`. A row is claimed by a conditional update, so two
deliveries of the same broker message cannot both send. A row left in `sending` (the worker died
while talking to the server) is turned into `unknown` by the sweeper and shown to a human.

`queue` picks the channel: mail for a mailbox's conversation, a public reply in the helpdesk's
post ledger (`pipeline.helpdesk`, exactly once by marker) for a helpdesk ticket.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass
from datetime import timedelta

from mailagent.agent.guardrails import safe_display_name
from mailagent.config import Settings
from mailagent.helpdesks.notes import reply_html
from mailagent.mail import imap, smtp
from mailagent.pipeline import helpdesk
from mailagent.store import db, outbound
from mailagent.store.db import Session
from mailagent.store.models import Conversation, Message, OutboundState, now

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Parent:
    """The message a reply answers: what threading and addressing need of it."""

    id: int                           # its row
    message_id: str | None            # its Message-ID header
    references: tuple[str, ...]
    subject: str
    from_addr: str
    reply_to: str
    from_name: str = ""

    @classmethod
    def of(cls, message: Message) -> Parent:
        return cls(message.id or 0, message.message_id, tuple(message.references), message.subject,
                   message.from_addr, message.reply_to, message.from_name)


@dataclass(frozen=True)
class QueuedReply:
    """A composed reply in the outbox."""

    id: int
    message_id: str
    raw: bytes
    approved_by: str | None


@dataclass(frozen=True)
class Queued:
    """A reply in its channel's outbox: hand `outbound_id` to `deliver`, `post_id` to `helpdesk_post`."""

    outbound_id: int | None = None
    post_id: int | None = None


def queue(s: Session, settings: Settings, conversation: Conversation, parent: Parent, text: str, *,
          approved_by: str | None, draft_id: int | None, author_id: str | None = None,
          remove_tags: tuple[str, ...] = ()) -> Queued:
    """The reply to `parent` in the outbox of the conversation's channel (the caller's
    transaction). A helpdesk reply is posted under `author_id` (the approving rep) when given,
    and removes the draft tag and `remove_tags` (the rep's decision tags) with the same update."""
    if conversation.helpdesk is not None and conversation.ticket_id is not None:
        desk = settings.helpdesk(conversation.helpdesk)
        post = helpdesk.queue_post(s, conversation.helpdesk, conversation.ticket_id, "reply", reply_html(text),
                                   author_id=author_id, remove_tags=tuple(dict.fromkeys((*remove_tags, desk.tags.draft))),
                                   draft_id=draft_id, conversation_id=conversation.id, approved_by=approved_by)
        return Queued(post_id=post.id)
    row = queue_reply(s, settings, conversation.id or 0, conversation.mailbox, parent, text, approved_by)
    return Queued(outbound_id=row.id)


def reply_mailbox(settings: Settings, name: str | None) -> str | None:
    """The configured mailbox a conversation's replies go out from: its own, or for one that came
    with none (Bcc, an alias) the default (`Settings.reply_mailbox`); None when there is none to
    pick, or its mailbox is no longer configured."""
    if name is not None:
        return name if name in settings.mailboxes else None
    return settings.reply_mailbox(None)


NO_MAILBOX = ("no mailbox to reply from: the message named none of our addresses (Bcc or an alias) and "
              "several mailboxes are configured; set [ingest] default_mailbox, or answer it from the right one")


def queue_reply(s: Session, settings: Settings, conversation_id: int, mailbox_name: str | None, parent: Parent,
                text: str, approved_by: str | None) -> QueuedReply:
    """Compose the reply to `parent` and put it in the outbox (the caller's transaction)."""
    chosen = reply_mailbox(settings, mailbox_name)
    if chosen is None:
        raise ValueError(f"conversation {conversation_id}: {NO_MAILBOX}")
    mailbox_name, mailbox = chosen, settings.mailbox(chosen)
    recipient = smtp.ascii_domain(parent.reply_to or parent.from_addr)
    reply = smtp.Reply(
        sender=mailbox.address, sender_name=mailbox.display_name, to=(recipient,),
        to_name="" if parent.reply_to else safe_display_name(parent.from_name),  # as the greeting may use it
        subject=parent.subject, text=text, in_reply_to=parent.message_id,
        references=parent.references, approved=approved_by is not None,
        conversation_id=conversation_id,
    )
    message_id, raw = smtp.compose(reply)
    row_id = outbound.add(s, conversation_id=conversation_id, reply_to_message_id=parent.id, mailbox=mailbox_name,
                          message_id=message_id, sender=mailbox.address, recipients=[recipient],
                          subject=smtp.reply_subject(parent.subject), body_text=text, raw=raw, approved_by=approved_by)
    return QueuedReply(row_id, message_id, raw, approved_by)


@dataclass(frozen=True)
class Delivery:
    """What one delivery attempt did; `retry_in` is set when it should be tried again."""

    outcome: smtp.Outcome
    retry_in: timedelta | None = None
    save_to_sent: bool = False            # sent, and the mailbox keeps a Sent folder


def backoff(settings: Settings, attempts: int) -> timedelta:
    seconds = settings.outbox.retry_base_seconds * 2 ** max(attempts - 1, 0)
    return timedelta(seconds=min(seconds, settings.outbox.retry_max_seconds))


_threads = threading.local()


def _loop() -> asyncio.Runner:
    """This thread's event loop for sends, kept between them: a new one per send (`asyncio.run`)
    costs more CPU than the SMTP conversation itself. Never the thread's current loop (a
    `loop_factory`), so it is invisible to anything else the thread runs."""
    if getattr(_threads, "runner", None) is None:
        _threads.runner = asyncio.Runner(loop_factory=asyncio.new_event_loop)
    return _threads.runner  # type: ignore[no-any-return]


def _claim(url: str, outbound_id: int) -> outbound.Claimed | None:
    with db.session(url) as s:
        return outbound.claim(s, outbound_id)


def deliver(settings: Settings, outbound_id: int) -> Delivery | None:
    """One attempt to send a queued reply; None when it was not due or not ours to send."""
    url = settings.database.url
    row = _claim(url, outbound_id)
    if row is None:
        return None
    cfg = settings.mailbox(row.mailbox).smtp
    if cfg is None:
        outcome = smtp.Outcome(smtp.Status.FAILED, f"mailbox {row.mailbox!r} has no [smtp] section")
    else:
        outcome = _loop().run(smtp.send(cfg, row.sender, row.recipients, row.raw,
                                        deadline=settings.outbox.send_timeout_seconds))
    retry_in = None
    done: dict[str, object] = {"refused": outcome.refused, "smtp_phase": outcome.phase,
                               "smtp_last_reply": outcome.last_reply}
    if outcome.status is smtp.Status.SENT:
        done |= {"state": OutboundState.SENT, "sent_at": now(), "smtp_response": outcome.detail}
    elif outcome.status is smtp.Status.RETRY and row.attempts < settings.outbox.max_attempts:
        retry_in = backoff(settings, row.attempts)
        done |= {"state": OutboundState.QUEUED, "last_error": outcome.detail, "next_attempt_at": now() + retry_in}
    elif outcome.status is smtp.Status.RETRY:
        done |= {"state": OutboundState.FAILED, "last_error": f"gave up after {row.attempts} attempts: {outcome.detail}"}
    else:
        done |= {"state": OutboundState(outcome.status.value), "last_error": outcome.detail}
    with db.session(url) as s:
        outbound.finish(s, outbound_id, **done)
    log.info("outbound %s: %s (%s)", outbound_id, outcome.status, outcome.detail)
    imap = settings.mailbox(row.mailbox).imap
    return Delivery(outcome, retry_in, bool(imap and imap.sent_folder))


def save_to_sent(settings: Settings, outbound_id: int) -> bool:
    """APPEND a sent reply to the mailbox's Sent folder, once."""
    with db.reading(settings.database.url) as s:
        row = outbound.sent_copy(s, outbound_id)
    if row is None or row.state != OutboundState.SENT or row.saved_to_sent:
        return False
    cfg = settings.mailbox(row.mailbox).imap
    if cfg is None or not cfg.sent_folder:
        return False
    imap.append_sent(cfg, row.raw, row.sent_at or now())
    with db.session(settings.database.url) as s:
        outbound.mark_saved(s, outbound_id)
    return True


def mark_stale_sending(s: Session, settings: Settings) -> list[int]:
    """Rows whose worker died mid-send: their outcome is unknown, and a human must decide."""
    deadline = now() - timedelta(seconds=settings.outbox.send_timeout_seconds * 2)
    stale = outbound.stale_sending(s, deadline, "the worker stopped while sending; the reply may or may not "
                                                "have been delivered: check, then resolve by hand")
    if stale:
        log.warning("outbound %s: outcome unknown after a crash mid-send", stale)
    return stale
