"""From a customer turn to a decided draft, and from a rep's verdict to the outbox.

One draft per customer turn: the draft row is created first (unique per conversation and
message), the agent runs outside any transaction, then the decision is taken in one transaction
that first checks the turn is still the newest. A message that arrived meanwhile supersedes the
draft and asks for a redraft, so a conversation never gets two replies to one state of it.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from datetime import timedelta
from enum import StrEnum
from uuid import uuid4

from sqlalchemy import func, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from mailagent.actions import proposals
from mailagent.actions.backends import make_backend
from mailagent.actions.backends.base import BackendError
from mailagent.actions.execute import OutcomeUnknown
from mailagent.agent.input import Turn
from mailagent.agent.run import DraftRequest, DraftResult, Verdict, draft, resume
from mailagent.config import Settings
from mailagent.pipeline import outbox
from mailagent.policy import Decision, current_policy, decide
from mailagent.policy.facts import Facts, ProposedAction
from mailagent.store import audit, db
from mailagent.store.models import (
    Action,
    ActionState,
    Conversation,
    Draft,
    DraftState,
    Message,
    MessageState,
    Outbound,
    SpanRecord,
    now,
)

log = logging.getLogger(__name__)

class Step(StrEnum):
    NOTHING = "nothing"        # no turn to answer, or it is answered or being answered
    DECIDED = "decided"
    WAITING = "waiting"        # proposed actions wait for a rep
    REDRAFT = "redraft"        # a newer message arrived while drafting: draft again


@dataclass(frozen=True)
class Outcome:
    step: Step
    draft_id: int | None = None
    outbound_id: int | None = None
    decision: str | None = None         # when DECIDED: send | hold | escalate | ignore, and by which rule


def latest_turn(s: Session, conversation_id: int) -> Message | None:
    return s.exec(
        select(Message).where(Message.conversation_id == conversation_id, Message.state == MessageState.PROCESSED)
        .order_by(col(Message.id).desc())
    ).first()


@dataclass(frozen=True)
class Started:
    draft_id: int
    request: DraftRequest
    turn: Message
    resume: bool = False       # a paused run whose worker died mid-resume: continue it


def _start(settings: Settings, conversation_id: int) -> Started | None:
    """Create (or take over a stale) draft for the newest turn; None if there is nothing to do.
    What the agent needs is read first, in a transaction that does not hold the writers' lock."""
    stale = now() - timedelta(seconds=settings.clock.stuck_after_seconds)
    with db.reading(settings.database.url) as s:
        conversation = s.get(Conversation, conversation_id)
        turn = latest_turn(s, conversation_id) if conversation else None
        if conversation is None or turn is None:
            return None
        existing = s.exec(select(Draft).where(Draft.conversation_id == conversation_id,
                                              Draft.message_id == turn.id)).first()
        request = _request(s, settings, conversation, turn, 0)
    if existing is not None and existing.state != DraftState.DRAFTING:
        return None
    with db.session(settings.database.url) as s:
        if existing is None:
            row = Draft(conversation_id=conversation_id, message_id=turn.id)
            s.add(row)
            s.flush()
        elif s.execute(
            update(Draft).where(Draft.id == existing.id, Draft.state == DraftState.DRAFTING, Draft.started_at < stale)
            .values(started_at=now(), state=DraftState.WAITING if existing.run_state else DraftState.DRAFTING)
        ).rowcount:
            row = existing                  # the worker drafting it died: take over
        else:
            return None
        assert row.id is not None
        return Started(row.id, replace(request, draft_id=row.id), turn, bool(existing and existing.run_state))


def _request(s: Session, settings: Settings, conversation: Conversation, turn: Message, draft_id: int) -> DraftRequest:
    earlier = s.exec(select(Message).where(Message.conversation_id == conversation.id, Message.id != turn.id,
                                           Message.kind == "normal")).all()
    sent = s.exec(select(Outbound).where(Outbound.conversation_id == conversation.id)).all()
    history = sorted([Turn("customer", m.received_at, m.reply_text or m.text) for m in earlier]
                     + [Turn("us", o.created_at, o.body_text) for o in sent], key=lambda t: t.at)
    mailbox = settings.mailboxes.get(conversation.mailbox or "")
    return DraftRequest(
        conversation_id=conversation.id or 0, draft_id=draft_id, mailbox_address=mailbox.address if mailbox else "",
        customer_name=turn.from_name, customer_addr=conversation.customer_addr, subject=turn.subject,
        latest=turn.reply_text or turn.text, hidden_text=turn.hidden_text, quoted_text=turn.quoted_text,
        attachment_names=tuple(a.get("filename") or "" for a in turn.attachments), history=tuple(history[-10:]),
    )


def _with_customer(settings: Settings, request: DraftRequest) -> DraftRequest:
    """What the backend knows of the customer (plan, tier): for the agent, and for the policy."""
    try:
        customer = make_backend(settings).lookup_customer(request.customer_addr)
    except BackendError as exc:
        log.warning("customer lookup failed: %s", exc)
        return request
    if customer is None:
        return request
    details = {"tier": customer.tier, "name": customer.name, "company": customer.company,
               "plans": ", ".join(f"{sub.plan} ({sub.status})" for sub in customer.subscriptions)}
    return replace(request, customer_details={k: v for k, v in details.items() if v})


def draft_reply(settings: Settings, conversation_id: int) -> Outcome:
    """Draft the reply to the conversation's newest turn and apply the policy's decision."""
    try:
        started = _start(settings, conversation_id)
    except IntegrityError:
        return Outcome(Step.NOTHING)        # another worker created the draft a moment ago
    if started is None:
        return Outcome(Step.NOTHING)
    if started.resume:
        return resume_draft(settings, started.draft_id)
    request = _with_customer(settings, started.request)
    turn = started.turn
    if turn.kind != "normal" or turn.parse_error:
        result = None                       # nothing for a model to read, or nothing to answer
    else:
        result = asyncio.run(draft(settings, request))
    return _advance(settings, request, result)


def resume_draft(settings: Settings, draft_id: int) -> Outcome:
    """Continue a paused run once every proposal is decided; a duplicate call does nothing."""
    claimed = _claim_resume(settings, draft_id)
    if claimed is None:
        return Outcome(Step.NOTHING, draft_id)
    request, run_state, verdicts = claimed
    request = _with_customer(settings, request)
    return _advance(settings, request, _resume(settings, request, run_state, verdicts))


def _resume(settings: Settings, request: DraftRequest, run_state: str, verdicts: dict[str, Verdict]) -> DraftResult:
    """Run a claimed draft on; if the backend did not answer, hand the draft back (`waiting`) so
    the step is tried again later with the same idempotency keys."""
    try:
        return asyncio.run(resume(settings, request, run_state, verdicts))
    except OutcomeUnknown:
        with db.session(settings.database.url) as s:
            s.execute(update(Draft).where(Draft.id == request.draft_id, Draft.state == DraftState.DRAFTING)
                      .values(state=DraftState.WAITING))
        raise


def _advance(settings: Settings, request: DraftRequest, result: DraftResult | None) -> Outcome:
    """After a run: pause on proposals (resuming at once when the policy decided them all), or
    decide the draft."""
    while result is not None and result.proposals:
        if not _pause(settings, request, result):
            return Outcome(Step.WAITING, request.draft_id)
        claimed = _claim_resume(settings, request.draft_id)
        if claimed is None:
            return Outcome(Step.NOTHING, request.draft_id)
        _, run_state, verdicts = claimed
        result = _resume(settings, request, run_state, verdicts)
    return _decide(settings, request, result)


def _pause(settings: Settings, request: DraftRequest, result: DraftResult) -> bool:
    """Store the proposals and the paused run; True when all of them are already decided.
    The facts are checked with the backend first, outside the transaction."""
    policy = current_policy(settings)
    backend = make_backend(settings)
    checked = [proposals.check(backend, request.customer_addr, p.tool, p.arguments) for p in result.proposals]
    with db.session(settings.database.url) as s:
        row = s.get(Draft, request.draft_id)
        assert row is not None
        db.lock(s, f"conversation:{row.conversation_id}")
        s.refresh(row)
        _record(row, result)
        actions = [proposals.propose(s, policy, row, p.call_id, p.tool, p.arguments, facts)
                   for p, facts in zip(result.proposals, checked, strict=True)]
        row.run_state, row.state = result.run_state, DraftState.WAITING
        waiting = [a for a in actions if a.state == ActionState.PROPOSED]
        row.reasons = [f"action {a.id} ({a.tool}) waits for a rep" for a in waiting]
        return not waiting


def _claim_resume(settings: Settings, draft_id: int) -> tuple[DraftRequest, str, dict[str, Verdict]] | None:
    with db.session(settings.database.url) as s:
        row = s.get(Draft, draft_id)
        if row is None or row.state != DraftState.WAITING or not row.run_state:
            return None
        actions = s.exec(select(Action).where(Action.draft_id == draft_id)).all()
        if any(a.state == ActionState.PROPOSED for a in actions):
            return None
        claimed = s.execute(update(Draft).where(Draft.id == draft_id, Draft.state == DraftState.WAITING)
                            .values(state=DraftState.DRAFTING, started_at=now())).rowcount
        conversation, turn = s.get(Conversation, row.conversation_id), s.get(Message, row.message_id)
        if not claimed or conversation is None or turn is None:
            return None
        verdicts = {a.call_id: Verdict(a.state != ActionState.REJECTED,
                                       f"Not approved ({a.decided_by}): {'; '.join(a.reasons)}")
                    for a in actions}
        return _request(s, settings, conversation, turn, draft_id), row.run_state, verdicts


def _facts(s: Session, conversation: Conversation, turn: Message, row: Draft, request: DraftRequest,
           result: DraftResult | None) -> Facts:
    output = result.draft if result else None
    flags = list(result.flags if result else ())
    if turn.parse_error:
        flags.append("parse_error")
    if result and result.escalations:
        flags.append("agent_escalated")
    day_ago = now() - timedelta(days=1)
    automatic = select(func.count()).select_from(Outbound).where(col(Outbound.approved_by).is_(None))
    earlier_conversations = s.exec(select(func.count()).select_from(Conversation).where(
        Conversation.customer_addr == conversation.customer_addr, Conversation.id != conversation.id)).one()
    earlier_messages = s.exec(select(func.count()).select_from(Message).where(
        Message.conversation_id == conversation.id, Message.id != turn.id)).one()
    actions = s.exec(select(Action).where(Action.draft_id == row.id)).all()
    return Facts(
        channel="email", mailbox=conversation.mailbox, kind=turn.kind or "normal",
        intent=output.intent if output else "other", language=output.language if output else "",
        confidence=output.confidence if output else 0.0,
        needs_human=(output.needs_human if output else True) or bool(result and result.escalations),
        actions=tuple(ProposedAction(a.tool, a.arguments, a.amount, a.currency,
                                     approved_by_rep=_by_rep(a.decided_by), executed=a.state == ActionState.EXECUTED)
                      for a in actions),
        customer_tier=request.customer_details.get("tier"),
        customer_domain=conversation.customer_addr.rpartition("@")[2], has_attachments=bool(turn.attachments),
        first_contact=earlier_conversations == 0 and earlier_messages == 0, flags=tuple(flags),
        taken_over=conversation.taken_by is not None, at=now(),
        auto_sends_customer_today=s.exec(automatic.join(Conversation).where(
            Conversation.customer_addr == conversation.customer_addr, Outbound.created_at >= day_ago)).one(),
        auto_sends_conversation=s.exec(automatic.where(Outbound.conversation_id == conversation.id)).one(),
    )


def _by_rep(decided_by: str | None) -> bool:
    return bool(decided_by) and not decided_by.startswith(("policy:", "system"))  # type: ignore[union-attr]


_STATE = {"send": DraftState.SENT, "hold": DraftState.HELD, "escalate": DraftState.ESCALATED,
          "ignore": DraftState.IGNORED}


def _decide(settings: Settings, request: DraftRequest, result: DraftResult | None) -> Outcome:
    policy = current_policy(settings)
    draft_id = request.draft_id
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
        row.run_state = None
        if newest.id != turn.id:
            row.state, row.decided_at = DraftState.SUPERSEDED, now()
            row.reasons = [f"message {newest.id} arrived while drafting: drafting again"]
            return Outcome(Step.REDRAFT, draft_id)
        facts = _facts(s, conversation, turn, row, request, result)
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
            s.add(SpanRecord(id=f"policy_{row.id}_{uuid4().hex[:8]}", trace_id=row.trace_id, kind="policy",
                             name=decision.rule, started_at=now(), ended_at=now(),
                             data={"decision": decision.decision, "shadow": decision.shadow,
                                   "rule": decision.rule, "reasons": list(decision.reasons),
                                   "policy_version": policy.version}))
        log.info("draft %s: %s by %s", draft_id, decision.decision, decision.rule)
        return Outcome(Step.DECIDED, draft_id, outbound_id, f"{row.state} ({decision.rule})")


def _record(row: Draft, result: DraftResult) -> None:
    output = result.draft
    row.model, row.prompt_version, row.trace_id, row.usage = result.model, result.prompt_version, result.trace_id, result.usage
    row.error = result.error
    if output is not None:
        row.text, row.confidence, row.intent, row.language = output.reply, output.confidence, output.intent, output.language
        row.needs_human, row.needs_human_reason = output.needs_human, output.needs_human_reason
        row.cited = list(output.cited_articles)
    notes = [*result.notes, *(f"the agent escalated: {e}" for e in result.escalations)]
    if notes:
        row.needs_human_reason = "; ".join(filter(None, [row.needs_human_reason, *notes]))


def _supersede_older(s: Session, row: Draft) -> None:
    """A draft for an older turn must not be approved, nor its actions run, once a newer one was
    decided."""
    older = select(Draft.id).where(Draft.conversation_id == row.conversation_id, Draft.id != row.id,
                                   col(Draft.state).in_([DraftState.HELD, DraftState.ESCALATED, DraftState.WAITING]))
    ids = list(s.exec(older))
    if not ids:
        return
    for action in s.exec(select(Action).where(col(Action.draft_id).in_(ids), Action.state == ActionState.PROPOSED)):
        action.state, action.decided_by, action.decided_at = ActionState.REJECTED, "system", now()
        action.reasons = [f"superseded by draft {row.id}"]
        audit.record(s, "system", "rejected", conversation_id=action.conversation_id, draft_id=action.draft_id,
                     action_id=action.id, reasons=action.reasons)
    s.execute(update(Draft).where(col(Draft.id).in_(ids))
              .values(state=DraftState.SUPERSEDED, run_state=None, reasons=[f"superseded by draft {row.id}"]))
