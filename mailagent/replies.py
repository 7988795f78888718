"""From a customer turn to a decided draft, and from a rep's verdict to the outbox.

One draft per customer turn: the draft row is created first (unique per conversation and
message), the agent runs outside any transaction, then the decision is taken in one transaction
that first checks the turn is still the newest. A message that arrived meanwhile supersedes the
draft and asks for a redraft, so a conversation never gets two replies to one state of it.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from pathlib import Path

from sqlalchemy import func, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from . import db, outbox
from .agent.agent import Turn
from .agent.draft import DraftRequest, DraftResult, draft
from .config import Settings
from .models import Conversation, Draft, DraftState, Feedback, Message, MessageState, Outbound, SpanRecord, now
from .policy.decide import Decision, decide
from .policy.facts import Facts
from .policy.load import PolicyStore

log = logging.getLogger(__name__)

_stores: dict[str, PolicyStore] = {}


def policy_store(settings: Settings) -> PolicyStore:
    """One store per policy folder per process; it reloads changed files by itself."""
    directory = settings.policy.directory
    if directory not in _stores:
        _stores[directory] = PolicyStore(Path(directory), interval=settings.policy.reload_seconds)
    return _stores[directory]


class Step(StrEnum):
    NOTHING = "nothing"        # no turn to answer, or it is answered or being answered
    DECIDED = "decided"
    REDRAFT = "redraft"        # a newer message arrived while drafting: draft again


@dataclass(frozen=True)
class Outcome:
    step: Step
    draft_id: int | None = None
    outbound_id: int | None = None


def latest_turn(s: Session, conversation_id: int) -> Message | None:
    return s.exec(
        select(Message).where(Message.conversation_id == conversation_id, Message.state == MessageState.PROCESSED)
        .order_by(col(Message.id).desc())
    ).first()


def _start(settings: Settings, conversation_id: int) -> tuple[int, DraftRequest, Message] | None:
    """Create (or take over a stale) draft for the newest turn; None if there is nothing to do."""
    stale = now() - timedelta(seconds=settings.clock.stuck_after_seconds)
    with db.session(settings.database.url) as s:
        conversation = s.get(Conversation, conversation_id)
        turn = latest_turn(s, conversation_id) if conversation else None
        if conversation is None or turn is None:
            return None
        existing = s.exec(select(Draft).where(Draft.conversation_id == conversation_id,
                                              Draft.message_id == turn.id)).first()
        if existing is None:
            row = Draft(conversation_id=conversation_id, message_id=turn.id)
            s.add(row)
            s.flush()
            draft_id = row.id
        elif existing.state == DraftState.DRAFTING and s.execute(
            update(Draft).where(Draft.id == existing.id, Draft.state == DraftState.DRAFTING, Draft.started_at < stale)
            .values(started_at=now())
        ).rowcount:
            draft_id = existing.id          # the worker drafting it died: take over
        else:
            return None
        assert draft_id is not None
        return draft_id, _request(s, settings, conversation, turn), turn


def _request(s: Session, settings: Settings, conversation: Conversation, turn: Message) -> DraftRequest:
    earlier = s.exec(select(Message).where(Message.conversation_id == conversation.id, Message.id != turn.id,
                                           Message.kind == "normal")).all()
    sent = s.exec(select(Outbound).where(Outbound.conversation_id == conversation.id)).all()
    history = sorted([Turn("customer", m.received_at, m.reply_text or m.text) for m in earlier]
                     + [Turn("us", o.created_at, o.body_text) for o in sent], key=lambda t: t.at)
    mailbox = settings.mailboxes.get(conversation.mailbox or "")
    return DraftRequest(
        conversation_id=conversation.id or 0, mailbox_address=mailbox.address if mailbox else "",
        customer_name=turn.from_name, customer_addr=turn.from_addr, subject=turn.subject,
        latest=turn.reply_text or turn.text, hidden_text=turn.hidden_text, quoted_text=turn.quoted_text,
        attachment_names=tuple(a.get("filename") or "" for a in turn.attachments), history=tuple(history[-10:]),
    )


def draft_reply(settings: Settings, conversation_id: int) -> Outcome:
    """Draft the reply to the conversation's newest turn and apply the policy's decision."""
    try:
        started = _start(settings, conversation_id)
    except IntegrityError:
        return Outcome(Step.NOTHING)        # another worker created the draft a moment ago
    if started is None:
        return Outcome(Step.NOTHING)
    draft_id, request, turn = started
    if turn.kind != "normal" or turn.parse_error:
        result = None                       # nothing for a model to read, or nothing to answer
    else:
        result = asyncio.run(draft(settings, request))
    return _decide(settings, draft_id, result)


def _facts(s: Session, conversation: Conversation, turn: Message, result: DraftResult | None) -> Facts:
    output = result.draft if result else None
    flags = list(result.flags if result else ())
    if turn.parse_error:
        flags.append("parse_error")
    day_ago = now() - timedelta(days=1)
    automatic = select(func.count()).select_from(Outbound).where(col(Outbound.approved_by).is_(None))
    earlier_conversations = s.exec(select(func.count()).select_from(Conversation).where(
        Conversation.customer_addr == conversation.customer_addr, Conversation.id != conversation.id)).one()
    earlier_messages = s.exec(select(func.count()).select_from(Message).where(
        Message.conversation_id == conversation.id, Message.id != turn.id)).one()
    return Facts(
        channel="email", mailbox=conversation.mailbox, kind=turn.kind or "normal",
        intent=output.intent if output else "other", language=output.language if output else "",
        confidence=output.confidence if output else 0.0, needs_human=output.needs_human if output else True,
        customer_domain=turn.from_addr.rpartition("@")[2], has_attachments=bool(turn.attachments),
        first_contact=earlier_conversations == 0 and earlier_messages == 0, flags=tuple(flags),
        taken_over=conversation.taken_by is not None, at=now(),
        auto_sends_customer_today=s.exec(automatic.join(Conversation).where(
            Conversation.customer_addr == conversation.customer_addr, Outbound.created_at >= day_ago)).one(),
        auto_sends_conversation=s.exec(automatic.where(Outbound.conversation_id == conversation.id)).one(),
    )


_STATE = {"send": DraftState.SENT, "hold": DraftState.HELD, "escalate": DraftState.ESCALATED,
          "ignore": DraftState.IGNORED}


def _decide(settings: Settings, draft_id: int, result: DraftResult | None) -> Outcome:
    policy = policy_store(settings).current()
    with db.session(settings.database.url) as s:
        row = s.get(Draft, draft_id)
        assert row is not None
        db.lock(s, f"conversation:{row.conversation_id}")
        s.refresh(row)
        if row.state != DraftState.DRAFTING:
            return Outcome(Step.NOTHING, draft_id)            # decided by a duplicate run
        conversation = s.get(Conversation, row.conversation_id)
        turn = s.get(Message, row.message_id)
        newest = latest_turn(s, row.conversation_id)
        assert conversation is not None and turn is not None and newest is not None
        if result is not None:
            _record(row, result)
        if newest.id != turn.id:
            row.state, row.decided_at = DraftState.SUPERSEDED, now()
            row.reasons = [f"message {newest.id} arrived while drafting: drafting again"]
            return Outcome(Step.REDRAFT, draft_id)
        facts = _facts(s, conversation, turn, result)
        decision = decide(policy, facts)
        if decision.decision == "send" and not row.text.strip():
            decision = Decision("hold", "invariant: nothing to send", (*decision.reasons, "held: the draft is empty"))
        row.decision, row.rule, row.reasons, row.shadow = decision.decision, decision.rule, list(decision.reasons), decision.shadow
        row.facts, row.decided_at, row.policy_version = facts.to_dict(), now(), policy.version
        row.flags = list(facts.flags)
        row.state = _STATE[decision.decision] if not decision.shadow else DraftState.HELD
        _supersede_older(s, row)
        outbound_id = None
        if row.state == DraftState.SENT:
            outbound_id = outbox.queue_reply(s, settings, conversation, turn, row.text, approved_by=None).id
            row.outbound_id = outbound_id
        if row.trace_id:
            s.add(SpanRecord(id=f"policy_{row.id}", trace_id=row.trace_id, kind="policy", name=decision.rule,
                             started_at=now(), ended_at=now(),
                             data={"decision": decision.decision, "shadow": decision.shadow,
                                   "rule": decision.rule, "reasons": list(decision.reasons),
                                   "policy_version": policy.version}))
        log.info("draft %s: %s by %s", draft_id, decision.decision, decision.rule)
        return Outcome(Step.DECIDED, draft_id, outbound_id)


def _record(row: Draft, result: DraftResult) -> None:
    output = result.draft
    row.model, row.prompt_version, row.trace_id, row.usage = result.model, result.prompt_version, result.trace_id, result.usage
    row.error = result.error
    if output is not None:
        row.text, row.confidence, row.intent, row.language = output.reply, output.confidence, output.intent, output.language
        row.needs_human, row.needs_human_reason = output.needs_human, output.needs_human_reason
        row.cited = list(output.cited_articles)
    if result.notes:
        row.needs_human_reason = "; ".join(filter(None, [row.needs_human_reason, *result.notes]))


def _supersede_older(s: Session, row: Draft) -> None:
    """A held draft for an older turn must not be approved after a newer one was decided."""
    s.execute(update(Draft).where(Draft.conversation_id == row.conversation_id, Draft.id != row.id,
                                  col(Draft.state).in_([DraftState.HELD, DraftState.ESCALATED]))
              .values(state=DraftState.SUPERSEDED, reasons=[f"superseded by draft {row.id}"]))


class ReviewError(ValueError):
    """A rep's action that cannot apply to this draft; says why."""


def approve(settings: Settings, draft_id: int, reviewer: str, text: str | None = None) -> tuple[Draft, int]:
    """Send a held draft (or the rep's edit of it); the draft-versus-final pair is kept."""
    with db.session(settings.database.url) as s:
        row = _reviewable(s, draft_id)
        final = text if text is not None else row.text
        if not final.strip():
            raise ReviewError(f"draft {draft_id} has no text to send: write the reply and pass it with --edit FILE")
        conversation, turn = s.get(Conversation, row.conversation_id), s.get(Message, row.message_id)
        assert conversation is not None and turn is not None
        outbound = outbox.queue_reply(s, settings, conversation, turn, final, approved_by=reviewer)
        edited = text is not None and text.strip() != row.text.strip()
        row.state, row.outbound_id, row.final_text = DraftState.SENT, outbound.id, final
        row.reviewed_by, row.reviewed_at = reviewer, now()
        s.add(Feedback(draft_id=draft_id, conversation_id=row.conversation_id, verdict="edited" if edited else "approved",
                       draft_text=row.text, final_text=final, reviewer=reviewer))
        assert outbound.id is not None
        return row, outbound.id


def reject(settings: Settings, draft_id: int, reviewer: str, reason: str) -> Draft:
    if not reason.strip():
        raise ReviewError("a rejection needs a reason (--reason TEXT): it teaches the next draft")
    with db.session(settings.database.url) as s:
        row = _reviewable(s, draft_id)
        row.state, row.reject_reason, row.reviewed_by, row.reviewed_at = DraftState.REJECTED, reason, reviewer, now()
        s.add(Feedback(draft_id=draft_id, conversation_id=row.conversation_id, verdict="rejected",
                       draft_text=row.text, reason=reason, reviewer=reviewer))
        return row


def _reviewable(s: Session, draft_id: int) -> Draft:
    row = s.get(Draft, draft_id)
    if row is None:
        raise ReviewError(f"no draft with id {draft_id}")
    db.lock(s, f"conversation:{row.conversation_id}")
    s.refresh(row)
    if row.state not in (DraftState.HELD, DraftState.ESCALATED):
        raise ReviewError(f"draft {draft_id} is {row.state}: only held or escalated drafts can be reviewed")
    newest = latest_turn(s, row.conversation_id)
    if newest is not None and newest.id != row.message_id:
        raise ReviewError(f"draft {draft_id} answers an older message: message {newest.id} arrived since "
                          "and gets its own draft")
    return row
