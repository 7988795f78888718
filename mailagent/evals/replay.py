"""Replay one turn: run the agent on a stored request with some settings, with no side effects,
and see what the policy, the pre-send gate and the classifiers make of the new draft.

No side effects: the request's draft and conversation ids are zeroed, so nothing the run does is
tied to a real draft; tools with side effects need approval, so a run that wants a refund pauses
and returns its proposals, and a replay never resumes it (nothing is executed, no proposal is
stored, nothing is queued or sent). Read-only lookups run against the backend, and the run's
trace is stored (under conversation 0, apart from live traces).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from mailagent.agent.run import DraftRequest, DraftResult, draft, result_facts
from mailagent.config import Settings
from mailagent.evals import candidate, gate, snapshot
from mailagent.evals import classifiers as classifying
from mailagent.evals.classifiers import Classifier
from mailagent.policy import (
    Decision,
    Facts,
    Policy,
    ProposedAction,
    decide,
    load_policy,
)
from mailagent.store import casefile, db, proposals, traces


@dataclass(frozen=True)
class Replayed:
    request: DraftRequest
    result: DraftResult
    facts: Facts
    decision: Decision
    grades: dict[str, float]
    labels: dict[str, str]
    seconds: float

    @property
    def reply(self) -> str:
        return self.result.draft.reply if self.result.draft else ""

    @property
    def paused(self) -> bool:
        return bool(self.result.proposals)

    def proposals(self) -> list[dict[str, Any]]:
        return [{"tool": p.tool, "arguments": p.arguments} for p in self.result.proposals]


def customer_text(request: DraftRequest) -> str:
    return f"{request.subject}\n{request.latest}"


def our_domains(settings: Settings, request: DraftRequest) -> tuple[str, ...]:
    """Domains whose addresses and links are ours: the mailbox's and the allowed link domains."""
    mailbox = request.mailbox_address.rpartition("@")[2]
    return tuple(d for d in (mailbox, *settings.agent.allowed_link_domains) if d)


def _amount(arguments: dict[str, Any]) -> Decimal | None:
    try:
        return Decimal(str(arguments["amount"]))
    except (KeyError, InvalidOperation, ValueError):
        return None


def facts_for(request: DraftRequest, result: DraftResult, grades: dict[str, float],
              labels: dict[str, str]) -> Facts:
    """What the policy would see for this draft, from the snapshot: no rates or takeover (a
    replay is judged as a fresh turn)."""
    return Facts(
        channel="email", kind="normal", **result_facts(result),
        actions=tuple(ProposedAction(p.tool, p.arguments, _amount(p.arguments), p.arguments.get("currency"))
                      for p in result.proposals),
        customer_tier=request.customer_details.get("tier"), customer_domain=request.customer_addr.rpartition("@")[2],
        has_attachments=bool(request.attachment_names), first_contact=not request.history,
        grades=grades, labels=labels,
    )


async def replay(settings: Settings, policy: Policy, classifiers: Sequence[Classifier],
                 request: DraftRequest) -> Replayed:
    """Draft again with `settings`; decide with `policy`; grade and label the new draft."""
    started = time.perf_counter()
    result = await draft(settings, replace(request, draft_id=0, conversation_id=0))
    reply = result.draft.reply if result.draft else ""
    grades = gate.grades(reply, customer_text=customer_text(request), customer_addr=request.customer_addr,
                         our_domains=our_domains(settings, request))
    labels = await classifying.alabels(classifiers, settings, draft=reply, customer=request.latest) if reply else {}
    facts = facts_for(request, result, grades, labels)
    return Replayed(request, result, facts, decide(policy, facts), grades, labels, time.perf_counter() - started)


@dataclass(frozen=True)
class Side:
    """One draft of a turn, with what decided it and its trace's steps."""

    reply: str
    decision: str
    rule: str
    flags: tuple[str, ...]
    confidence: float
    intent: str
    proposals: tuple[str, ...]
    trace: tuple[str, ...]


@dataclass(frozen=True)
class Compared:
    conversation_id: int
    draft_id: int
    old: Side
    new: Side


def trace_steps(url: str, trace_id: str | None) -> tuple[str, ...]:
    """A trace's spans in order, one line each (kind, name, and the tool call or check)."""
    if not trace_id:
        return ()
    with db.reading(url) as s:
        spans = traces.spans(s, trace_id)
    lines = []
    for span in spans:
        if span.kind == "custom" and span.name in ("task", "turn"):
            continue                                  # the SDK's own bookkeeping
        data = span.data
        detail = data.get("input") if span.kind == "function" else data.get("data") or data.get("decision") or ""
        shown = json.dumps(detail, ensure_ascii=False, default=str)[:120] if detail else ""
        lines.append(f"{span.kind}: {span.name} {shown}".rstrip())
    return tuple(lines)


def conversation(live: Settings, conversation_id: int, *, draft_id: int | None = None,
                 config_file: str | None = None) -> Compared:
    """Re-run the agent on a conversation's stored turn (its newest decided draft, or the one
    named) with the live config or a candidate; the old draft and the new one, side by side."""
    url = live.database.url
    with db.reading(url) as s:
        row = casefile.decided_draft(s, conversation_id, draft_id)
        if row is None:
            raise LookupError(f"conversation {conversation_id} has no decided draft"
                              + (f" with id {draft_id}" if draft_id is not None else ""))
        request = snapshot.request_for_draft(s, live, row)
    if request is None:
        raise LookupError(f"the message draft {row.id} answered is gone")
    old = Side(row.final_text or row.text, row.decision or "", row.rule or "", tuple(row.flags), row.confidence,
               row.intent, tuple(str(a.get("tool")) for a in _actions_of(url, row.id or 0)), trace_steps(url, row.trace_id))
    tried = candidate.load(live, config_file) if config_file else live
    policy = load_policy(Path(tried.policy.directory))
    with candidate.workspace(live, tried) as settings:
        again = asyncio.run(replay(settings, policy, classifying.live(settings), request))
        steps = trace_steps(settings.database.url, again.result.trace_id)
    output = again.result.draft
    new = Side(again.reply, again.decision.decision, again.decision.rule, tuple(again.facts.flags),
               output.confidence if output else 0.0, output.intent if output else "",
               tuple(p.tool for p in again.result.proposals), steps)
    return Compared(conversation_id, row.id or 0, old, new)


def _actions_of(url: str, draft_id: int) -> list[dict[str, Any]]:
    with db.reading(url) as s:
        return [{"tool": a.tool} for a in proposals.of_draft(s, draft_id)]
