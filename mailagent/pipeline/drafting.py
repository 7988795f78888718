"""From a customer turn to a decided draft: claim, read the ticket once, run the agent, then pause
on proposed actions or decide.

One draft per customer turn. A worker claims the turn's draft with a lease that it renews while
the agent runs: a redelivered message or the sweeper takes the draft over at once when its holder
died, and never while it lives. The agent runs outside any transaction, as a coroutine, so one
worker process keeps many runs in flight on one event loop. The decision is one transaction that
first checks the turn is still the newest: a message that arrived meanwhile supersedes the draft
and asks for a redraft, so a conversation never gets two replies to one state of it. A draft that
keeps failing ends held for a person, with the error, after `[worker] max_attempts` claims.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import TypeVar

from mailagent.actions import proposals
from mailagent.actions.backends import Customer, customer_of, make_backend
from mailagent.actions.execute import OutcomeUnknown
from mailagent.agent.input import Turn
from mailagent.agent.run import DraftRequest, DraftResult, Verdict, draft, resume
from mailagent.config import Settings
from mailagent.evals import classifiers, gate, snapshot
from mailagent.pipeline import decide, helpdesk_drafts, outbox, sender
from mailagent.policy import Decision, current_policy
from mailagent.store import db, decisions, tickets
from mailagent.store.db import Session
from mailagent.store.decisions import DraftRow
from mailagent.store.models import ActionState, Draft, DraftState, now
from mailagent.store.tickets import Ticket

log = logging.getLogger(__name__)
T = TypeVar("T")
RENEW_EVERY = 3              # renewals per lease period

# What the agent is told of an action a person did not approve. The rep's reason is internal: it
# is kept in the audit log and never reaches the model, so it cannot reach the customer.
NOT_APPROVED = ("This action was not approved by the support team and did not happen. Do not say or imply "
                "that it was done; tell the customer a colleague will follow up.")


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
    decision: str | None = None         # when DECIDED: the state and the deciding rule


# --- entry points -------------------------------------------------------------------------------

async def draft_reply(settings: Settings, conversation_id: int) -> Outcome:
    """Draft the reply to the conversation's newest turn and apply the policy's decision."""
    owner = _owner()
    ticket = await _write(settings, lambda s: _loaded(s, tickets.claim_new(s, conversation_id, owner,
                                                                           _lease(settings))))
    return Outcome(Step.NOTHING) if ticket is None else await _work(settings, owner, ticket)


async def resume_draft(settings: Settings, draft_id: int) -> Outcome:
    """Continue a paused run once every proposal is decided; a duplicate call does nothing."""
    owner = _owner()
    ticket = await _write(settings, lambda s: _loaded(s, tickets.claim_resume(s, draft_id, owner, _lease(settings))))
    return Outcome(Step.NOTHING, draft_id) if ticket is None else await _work(settings, owner, ticket)


def _loaded(s: Session, claimed: tuple[int, int] | None) -> Ticket | None:
    """The ticket of a draft just claimed, read in the claim's transaction."""
    return tickets.load(s, *claimed) if claimed else None


def draft_reply_sync(settings: Settings, conversation_id: int) -> Outcome:
    """`draft_reply` for callers without an event loop (one command, tests)."""
    return asyncio.run(draft_reply(settings, conversation_id))


def resume_draft_sync(settings: Settings, draft_id: int) -> Outcome:
    return asyncio.run(resume_draft(settings, draft_id))


# --- the work on a claimed draft ----------------------------------------------------------------

async def _work(settings: Settings, owner: str, ticket: Ticket) -> Outcome:
    """One attempt; a failure is recorded on the draft and the claim given back at once, so the
    next attempt (up to `[worker] max_attempts`, then held for a person) need not wait for the
    lease to run out."""
    if ticket.attempts > settings.worker.max_attempts:
        return await asyncio.to_thread(_give_up, settings, ticket, owner)
    try:
        return await _attempt(settings, owner, ticket)
    except OutcomeUnknown:
        raise                                   # handed back to `waiting` already
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"[:2000]
        await _write(settings, lambda s: tickets.failed(s, ticket.draft_id, owner, error))
        raise


async def _attempt(settings: Settings, owner: str, ticket: Ticket) -> Outcome:
    draft_id, attempts = ticket.draft_id, ticket.attempts
    async with _holding(settings, draft_id, owner):
        customer = await asyncio.to_thread(customer_of, settings, ticket.customer_addr)
        request = build_request(settings, ticket, customer)
        result = await _run(settings, ticket, request, owner)
        while result is not None and result.proposals:
            if not await asyncio.to_thread(_pause, settings, ticket, owner, customer, request, result):
                return Outcome(Step.WAITING, draft_id)
            # The policy decided every proposal: continue at once, with the verdicts just stored.
            ticket = await _read(settings, lambda s: tickets.load(s, draft_id, attempts))
            result = await _run(settings, ticket, request, owner)
        return await asyncio.to_thread(_decide, settings, ticket, owner, customer, request, result)


async def _run(settings: Settings, ticket: Ticket, request: DraftRequest, owner: str) -> DraftResult | None:
    """The agent's run, or its continuation; None when there is nothing for a model to read."""
    if ticket.run_state:
        verdicts = {call: Verdict(v.approved, "" if v.approved else NOT_APPROVED) for call, v in ticket.verdicts.items()}
        try:
            return await resume(settings, request, ticket.run_state, verdicts)
        except OutcomeUnknown:
            # The backend did not answer: hand the draft back, to be resumed later with the
            # same idempotency keys (the sweeper finds it), and let the caller know.
            await _write(settings, lambda s: tickets.release(s, ticket.draft_id, owner, DraftState.WAITING))
            raise
    if not ticket.answerable:
        return None
    return await draft(settings, request)


def build_request(settings: Settings, ticket: Ticket, customer: Customer | None) -> DraftRequest:
    unverified = sender.unverified(ticket)
    mailbox = settings.mailboxes.get(outbox.reply_mailbox(settings, ticket.mailbox) or "")
    return DraftRequest(
        conversation_id=ticket.conversation_id, draft_id=ticket.draft_id,
        mailbox_address=mailbox.address if mailbox else "", customer_name=ticket.from_name,
        customer_addr=ticket.customer_addr, subject=ticket.subject, latest=ticket.text,
        hidden_text=ticket.hidden_text, quoted_text=ticket.quoted_text, attachment_names=ticket.attachment_names,
        history=tuple(Turn(h.who, h.at, h.text) for h in ticket.history),
        customer_details=customer.details() if customer and not unverified else {},
        unverified_sender=unverified,
    )


def _pause(settings: Settings, ticket: Ticket, owner: str, customer: Customer | None, request: DraftRequest,
           result: DraftResult) -> bool:
    """Store the proposals and the paused run; True when the policy already decided all of them.
    The facts are checked with the backend first, outside the transaction."""
    policy = current_policy(settings)
    backend = make_backend(settings)
    checked = [proposals.check(backend, ticket.customer_addr, p.tool, p.arguments, known=customer)
               for p in result.proposals]
    with db.session(settings.database.url) as s:
        if _locked(s, ticket, owner) is None:
            return False                                    # another worker took the draft over
        row = s.get(Draft, ticket.draft_id)                 # proposals and helpdesk notes take the ORM object
        assert row is not None
        _record(row, request, result)
        actions = [proposals.propose(s, policy, row, p.call_id, p.tool, p.arguments, facts,
                                     unverified_sender=request.unverified_sender)
                   for p, facts in zip(result.proposals, checked, strict=True)]
        waiting = [a for a in actions if a.state == ActionState.PROPOSED]
        row.run_state, row.state, row.lease_owner, row.lease_until = result.run_state, DraftState.WAITING, None, None
        row.reasons = [proposals.waiting_reason(a) for a in waiting]
        if waiting and ticket.helpdesk is not None:         # helpdesk hook (issue 9): reps decide there
            helpdesk_drafts.waiting(s, settings, row, ticket, actions)
        if waiting:
            return False
        row.state = DraftState.DRAFTING                     # resumed at once, still ours
        row.lease_owner, row.lease_until = owner, now() + _lease(settings)
        return True


def _decide(settings: Settings, ticket: Ticket, owner: str, customer: Customer | None, request: DraftRequest,
            result: DraftResult | None) -> Outcome:
    policy = current_policy(settings)
    grades, labels = _graded(settings, ticket, request, result)
    with db.session(settings.database.url) as s:
        row = _locked(s, ticket, owner)
        if row is None:
            return Outcome(Step.NOTHING, ticket.draft_id)      # decided by another worker meanwhile
        if result is not None:
            _record(row, request, result)
        elif ticket.parse_error:             # not mail, or mail that cannot be read: a person looks
            row.needs_human, row.needs_human_reason = True, f"not readable as mail: {ticket.parse_error}"
        row.run_state, row.lease_owner, row.lease_until = None, None, None
        newest = tickets.newest_turn(s, ticket.conversation_id)
        if newest is not None and newest != ticket.message_id:
            row.state, row.decided_at = DraftState.SUPERSEDED, now()
            row.reasons = [f"message {newest} arrived while drafting: drafting again"]
            decisions.save(s, row)
            return Outcome(Step.REDRAFT, ticket.draft_id)
        facts = decide.facts(ticket, customer, result, tickets.counts(s, ticket), now(), grades=grades, labels=labels)
        no_way_out = outbox.NO_MAILBOX if ticket.helpdesk is None and outbox.reply_mailbox(
            settings, ticket.mailbox) is None else None
        decision = decide.verdict(policy, facts, row.text, no_reply_path=no_way_out)
        outbound_id = _apply(s, settings, row, ticket, decision, facts.to_dict(), policy.version)
        return Outcome(Step.DECIDED, ticket.draft_id, outbound_id, f"{row.state} ({decision.rule})")


def _give_up(settings: Settings, ticket: Ticket, owner: str) -> Outcome:
    """Too many claims ended without a decision: hold it for a person, with the reason. If even
    recording the decision fails, the draft is held bare: a failure never repeats forever."""
    try:
        return _hold_failed(settings, ticket, owner, decided=True)
    except Exception:
        log.exception("draft %s: recording the give-up decision failed; holding it bare", ticket.draft_id)
        return _hold_failed(settings, ticket, owner, decided=False)


def _hold_failed(settings: Settings, ticket: Ticket, owner: str, *, decided: bool) -> Outcome:
    with db.session(settings.database.url) as s:
        row = _locked(s, ticket, owner)
        if row is None:
            return Outcome(Step.NOTHING, ticket.draft_id)
        row.run_state, row.lease_owner, row.lease_until = None, None, None
        reason = f"drafting failed {ticket.attempts - 1} times: a person must answer ({row.error or 'see the logs'})"
        decision = Decision("hold", "invariant: drafting keeps failing", (reason,))
        row.flags = [*row.flags, "drafting_failed"]
        if decided:
            _apply(s, settings, row, ticket, decision, {}, current_policy(settings).version)
        else:
            row.state, row.decision, row.rule, row.reasons, row.decided_at = (
                DraftState.HELD, decision.decision, decision.rule, list(decision.reasons), now())
            decisions.save(s, row)
        log.error("draft %s: %s", ticket.draft_id, reason)
        return Outcome(Step.DECIDED, ticket.draft_id, None, f"{row.state} ({decision.rule})")


def _locked(s: Session, ticket: Ticket, owner: str) -> DraftRow | None:
    """The draft, under the conversation's lock, if this worker still holds it."""
    return decisions.locked(s, ticket.draft_id, ticket.conversation_id, owner)


def _apply(s: Session, settings: Settings, row: DraftRow, ticket: Ticket, decision: Decision,
           facts: dict[str, object], policy_version: str) -> int | None:
    """Record the decision on the draft (written here); an auto-sent reply goes into the outbox."""
    row.decision, row.rule, row.reasons, row.shadow = (decision.decision, decision.rule, list(decision.reasons),
                                                       decision.shadow)
    row.facts, row.decided_at, row.policy_version = facts, now(), policy_version
    row.flags = list(dict.fromkeys([*row.flags, *facts.get("flags", ())]))  # type: ignore[arg-type]
    row.state = decide.state(decision)
    decisions.supersede_older(s, row)
    if ticket.helpdesk is None and row.state == DraftState.SENT:
        parent = outbox.Parent(ticket.message_id, ticket.message_id_header, ticket.references, ticket.subject,
                               ticket.from_addr, ticket.reply_to, ticket.from_name)
        row.outbound_id = outbox.queue_reply(s, settings, ticket.conversation_id, ticket.mailbox, parent, row.text,
                                             approved_by=None).id
    decisions.save(s, row)
    if ticket.helpdesk is not None:     # helpdesk hook (issue 9): the reply or the rep's note goes to the helpdesk
        helpdesk_drafts.decided(s, settings, decisions.orm(s, row), ticket)
    if row.trace_id:
        at = now()
        decisions.add_span(s, id=f"policy_{row.id}_{uuid.uuid4().hex[:8]}", trace_id=row.trace_id, kind="policy",
                           name=decision.rule, started_at=at, ended_at=at,
                           data={"decision": decision.decision, "shadow": decision.shadow, "rule": decision.rule,
                                 "reasons": list(decision.reasons), "policy_version": policy_version})
    log.info("draft %s: %s by %s", row.id, decision.decision, decision.rule)
    return row.outbound_id


def _graded(settings: Settings, ticket: Ticket, request: DraftRequest,
            result: DraftResult | None) -> tuple[dict[str, float], dict[str, str]]:
    """The pre-send gate's grades and the classifiers' labels of the draft (policy facts), computed
    before the decision's transaction."""
    reply = result.draft.reply if result and result.draft else ""
    if not reply:
        return {}, {}
    ours = tuple(d for d in (request.mailbox_address.rpartition("@")[2], *settings.agent.allowed_link_domains) if d)
    grades = gate.grades(reply, customer_text=f"{ticket.subject}\n{ticket.text}", customer_addr=ticket.customer_addr,
                         our_domains=ours, executed=result.executed if result else ())
    labels = classifiers.labels(classifiers.live(settings), draft=reply, customer=ticket.text, key=str(ticket.draft_id))
    return grades, labels


def _record(row: Draft | DraftRow, request: DraftRequest, result: DraftResult) -> None:
    """What the run produced, and the request it answered (the snapshot the learning loop keeps)."""
    row.request = snapshot.dump(request)
    output = result.draft
    row.model, row.prompt_version, row.trace_id, row.usage = result.model, result.prompt_version, result.trace_id, result.usage
    row.error = result.error
    if output is not None:
        row.text, row.confidence, row.intent, row.language = output.reply, output.confidence, output.intent, output.language
        row.needs_human, row.needs_human_reason = output.needs_human, output.needs_human_reason
        row.cited = list(output.cited_articles)
    if output is None or result.escalations:            # no draft, or handed over: a person answers
        row.needs_human = True
    notes = [*result.notes, *(f"the agent escalated: {e}" for e in result.escalations)]
    if notes:
        row.needs_human_reason = "; ".join(filter(None, [row.needs_human_reason, *notes]))


# --- leases and transactions off the event loop --------------------------------------------------

def _owner() -> str:
    """Who holds a draft's lease: readable in the database, unique per claim."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _lease(settings: Settings) -> timedelta:
    return timedelta(seconds=settings.worker.lease_seconds)


@contextlib.asynccontextmanager
async def _holding(settings: Settings, draft_id: int, owner: str) -> AsyncIterator[None]:
    """Renew the draft's lease while the block runs (the agent may take minutes)."""

    async def renew() -> None:
        every = settings.worker.lease_seconds / RENEW_EVERY
        while True:
            await asyncio.sleep(every)
            if not await _write(settings, lambda s: tickets.renew(s, draft_id, owner, _lease(settings))):
                log.warning("draft %s: lease lost to another worker", draft_id)
                return

    renewing = asyncio.create_task(renew())
    try:
        yield
    finally:
        renewing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renewing


async def _read(settings: Settings, work: Callable[[Session], T]) -> T:
    def run() -> T:
        with db.reading(settings.database.url) as s:
            return work(s)
    return await asyncio.to_thread(run)


async def _write(settings: Settings, work: Callable[[Session], T]) -> T:
    def run() -> T:
        with db.session(settings.database.url) as s:
            return work(s)
    return await asyncio.to_thread(run)

