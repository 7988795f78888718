"""What the agent saw when it drafted, kept as JSON: an eval case stays replayable after the
conversation changes, the customer's plan changes, or the mail is deleted.

`dump` turns a `DraftRequest` into redacted JSON (the same redaction as traces), `load` turns it
back into a request for a replay. When a draft row carries no snapshot of its own (drafts made
before the pipeline stored one), `request_for_draft` rebuilds what the agent saw from the store:
the turn it answered, the earlier customer turns, our replies sent before the draft was started,
and the customer's details as the backend knows them now.
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter

from mailagent.actions.backends import customer_of
from mailagent.agent.input import Turn
from mailagent.agent.run import DraftRequest
from mailagent.config import Settings
from mailagent.redact import redact_data
from mailagent.store import evalcases
from mailagent.store.db import Session
from mailagent.store.models import Conversation, Draft, Message

log = logging.getLogger(__name__)

HISTORY = 10                                    # turns of history the agent is given
_REQUEST = TypeAdapter(DraftRequest)


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def dump(request: DraftRequest) -> dict[str, Any]:
    """The request as redacted JSON."""
    return redact_data(_jsonable(dataclasses.asdict(request)))


def load(data: dict[str, Any]) -> DraftRequest:
    """A request from `dump`'s JSON; a `pydantic.ValidationError` when it is not one."""
    return _REQUEST.validate_python(data)


def customer_details(settings: Settings, address: str) -> dict[str, str]:
    """What the backend knows of a customer (plan, tier), as the agent is given it."""
    customer = customer_of(settings, address)
    return customer.details() if customer else {}


def request_for_draft(s: Session, settings: Settings, draft: Draft) -> DraftRequest | None:
    """The request behind a draft: its own snapshot, or one rebuilt from the store as of the
    moment the draft was started. None when the turn or conversation is gone."""
    if draft.request:
        return load(draft.request)
    conversation, turn = s.get(Conversation, draft.conversation_id), s.get(Message, draft.message_id)
    if conversation is None or turn is None:
        return None
    earlier, sent = evalcases.history_before(s, conversation.id or 0, turn.id or 0, draft.created_at)
    history = sorted([Turn("customer", m.received_at, m.reply_text or m.text) for m in earlier]
                     + [Turn("us", o.created_at, o.body_text) for o in sent], key=lambda t: t.at)
    mailbox = settings.mailboxes.get(conversation.mailbox or "")
    return DraftRequest(
        conversation_id=conversation.id or 0, draft_id=draft.id or 0,
        mailbox_address=mailbox.address if mailbox else "", customer_name=turn.from_name,
        customer_addr=conversation.customer_addr, subject=turn.subject, latest=turn.reply_text or turn.text,
        hidden_text=turn.hidden_text, quoted_text=turn.quoted_text,
        attachment_names=tuple(a.get("filename") or "" for a in turn.attachments), history=tuple(history[-HISTORY:]),
        customer_details=customer_details(settings, conversation.customer_addr),
    )
