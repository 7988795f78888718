"""Eval cases: every rep's verdict on a draft, and every flag a rep raises, becomes a case.

A case is a snapshot of the turn as the agent saw it (`snapshot`), the draft, the rep's final as
the reference, what changed (`diff`), tags (intent, language, the deciding rule, tools) and its
source:

- `approved`: the rep sent the draft as it was (the reference is the draft);
- `edit`: the rep changed the draft and sent it;
- `rep-written`: the agent abstained (asked for a human, or wrote nothing) and the rep answered;
- `rejected`: the rep sent nothing (no reference; the reason is the note);
- `flag`: a rep marked the conversation as a test (a reference only if the rep wrote one).

`build` turns every Feedback row without a case into one; it is idempotent (one case per
origin, enforced by a unique key) and is what the `build_eval_cases` actor runs every half
minute. Cases start `new`; leads `accept` them into the regression sets or `drop` them. Text is
redacted as traces are.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from mailagent.config import Settings
from mailagent.evals import diff, snapshot
from mailagent.redact import password_values, redact
from mailagent.store import audit, casefile, db, evalcases, proposals
from mailagent.store.db import Session
from mailagent.store.models import Draft, EvalCase, Message, now

SOURCES = ("approved", "edit", "rep-written", "rejected", "flag")
STATES = ("new", "accepted", "dropped")
BATCH = 200


class CaseError(ValueError):
    """A curation step that cannot apply; the message says why."""


def _actions(s: Session, draft_id: int) -> list[dict[str, Any]]:
    return [{"tool": a.tool, "arguments": a.arguments, "amount": str(a.amount) if a.amount is not None else None,
             "currency": a.currency, "state": a.state, "decided_by": a.decided_by}
            for a in proposals.of_draft(s, draft_id)]


def _meta(draft: Draft) -> dict[str, Any]:
    return {"intent": draft.intent, "language": draft.language, "confidence": draft.confidence,
            "cited": list(draft.cited), "needs_human": draft.needs_human,
            "needs_human_reason": redact(draft.needs_human_reason), "flags": list(draft.flags),
            "decision": draft.decision, "rule": draft.rule, "model": draft.model,
            "prompt_version": draft.prompt_version, "policy_version": draft.policy_version}


def _tags(draft: Draft, actions: Sequence[dict[str, Any]]) -> list[str]:
    tags = [f"intent:{draft.intent or 'other'}", f"language:{draft.language or 'unknown'}"]
    if draft.rule:
        tags.append(f"rule:{draft.rule}")
    tags += sorted({f"tool:{a['tool']}" for a in actions})
    return tags


def abstained(draft: Draft) -> bool:
    """The agent wrote no answer of its own: it asked for a human, or wrote nothing."""
    return draft.needs_human or not draft.text.strip()


def _source(verdict: str, draft: Draft) -> str:
    if verdict == "rejected":
        return "rejected"
    if verdict == "approved":
        return "approved"
    # a final a rep wrote instead of the draft (helpdesks tell: `rep-written`), or a draft that abstained
    return "rep-written" if verdict == "rep-written" or abstained(draft) else "edit"


def _scrubber(s: Session, draft: Draft) -> Callable[[str], str]:
    """Redaction, plus the passwords the customer wrote wherever they are repeated (a rep who
    quotes one back in a form the patterns do not know: "your password Hunter22x")."""
    turn = s.get(Message, draft.message_id)
    known = password_values(f"{turn.text}\n{turn.quoted_text}\n{turn.hidden_text}") if turn else []

    def scrub(text: str) -> str:
        for value in known:
            text = text.replace(value, "[REDACTED:password]")
        return redact(text)

    return scrub


def _case(s: Session, settings: Settings, draft: Draft, *, origin: str, source: str, reference: str | None,
          reviewer: str, note: str, rep_at: Any, feedback_id: int | None = None) -> EvalCase | None:
    request = snapshot.request_for_draft(s, settings, draft)
    if request is None:
        return None
    actions = _actions(s, draft.id or 0)
    scrub = _scrubber(s, draft)
    text = scrub(draft.text)
    final = scrub(reference) if reference is not None else None
    return EvalCase(
        origin=origin, source=source, conversation_id=draft.conversation_id, draft_id=draft.id,
        feedback_id=feedback_id, request=snapshot.dump(request), draft=text, draft_meta=_meta(draft),
        reference=final, changes=diff.changes(text, final, actions), tags=_tags(draft, actions),
        reviewer=reviewer, note=scrub(note), rep_at=rep_at,
    )


def build(settings: Settings, limit: int = BATCH) -> int:
    """Turn Feedback rows that have no case yet into cases; returns how many were stored."""
    url = settings.database.url
    with db.reading(url) as s:
        built = []
        for fb in evalcases.feedback_without_case(s, limit):
            draft = s.get(Draft, fb.draft_id)
            if draft is None:
                continue
            case = _case(s, settings, draft, origin=f"feedback:{fb.id}", source=_source(fb.verdict, draft),
                         reference=fb.final_text if fb.verdict != "rejected" else None, reviewer=fb.reviewer,
                         note=fb.reason or "", rep_at=fb.created_at, feedback_id=fb.id)
            if case is not None:
                built.append(case)
    if not built:
        return 0
    with db.session(url) as s:
        return sum(evalcases.insert_new(s, case) for case in built)


def flag(settings: Settings, conversation_id: int, rep: str, note: str, *, reference: str | None = None,
         draft_id: int | None = None) -> EvalCase:
    """A rep marks a conversation's turn as a test: a case from its newest decided draft (or the
    draft named), with the rep's note and, if the rep wrote one, the reply it should have had.
    Flagging the same draft again returns the case already made."""
    if not note.strip():
        raise CaseError("a flag needs a note: what should this case check?")
    url = settings.database.url
    with db.reading(url) as s:
        draft = casefile.decided_draft(s, conversation_id, draft_id)
        if draft is None:
            raise CaseError(f"conversation {conversation_id} has no decided draft"
                            + (f" with id {draft_id}" if draft_id is not None else ""))
        sent = draft.final_text if draft.final_text is not None else None
        case = _case(s, settings, draft, origin=f"flag:draft:{draft.id}", source="flag",
                     reference=reference if reference is not None else sent, reviewer=rep, note=note, rep_at=now())
    if case is None:
        raise CaseError(f"the message draft {draft.id} answered is gone")
    with db.session(url) as s:
        evalcases.insert_new(s, case)
        stored = evalcases.by_origin(s, case.origin)
    return stored


@dataclass(frozen=True)
class Filter:
    states: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()            # a case matches when it has any of them


def select_cases(s: Session, which: Filter, limit: int | None = None) -> list[EvalCase]:
    rows = evalcases.matching(s, which.states, which.sources)
    if which.tags:
        rows = [r for r in rows if set(which.tags) & set(r.tags)]
    return rows[-limit:] if limit else rows


def summary(s: Session) -> tuple[dict[str, int], list[str]]:
    """How many cases each state holds, and every tag in use (for the review page's filters),
    without loading the snapshots."""
    counts = dict.fromkeys(STATES, 0)
    tags: set[str] = set()
    for state, row_tags in evalcases.states_and_tags(s):
        counts[state] = counts.get(state, 0) + 1
        tags.update(row_tags)
    return counts, sorted(tags)


def get(url: str, case_id: int) -> EvalCase:
    with db.reading(url) as s:
        case = s.get(EvalCase, case_id)
    if case is None:
        raise CaseError(f"no eval case with id {case_id}")
    return case


def curate(url: str, case_ids: Sequence[int], state: str, lead: str) -> list[EvalCase]:
    """Accept cases into the regression sets, or drop them; all or nothing, audited."""
    if state not in ("accepted", "dropped"):
        raise CaseError(f"a case can be accepted or dropped, not {state!r}")
    with db.session(url) as s:
        rows = [s.get(EvalCase, i) for i in case_ids]
        if missing := [i for i, row in zip(case_ids, rows, strict=True) if row is None]:
            raise CaseError(f"no eval case with id {', '.join(map(str, missing))}")
        for row in rows:
            assert row is not None
            row.state, row.curated_by, row.curated_at = state, lead, now()
            audit.record(s, lead, f"eval_case_{state}", conversation_id=row.conversation_id, draft_id=row.draft_id,
                         case_id=row.id)
        return [row for row in rows if row is not None]


def retag(url: str, case_id: int, add: Sequence[str], remove: Sequence[str], lead: str) -> EvalCase:
    """Add and remove tags (sets select cases by tag), audited."""
    if not any(t.strip() for t in [*add, *remove]):
        raise CaseError("say what to change: a tag to add and/or one to remove")
    if bad := [t for t in add if not t.strip() or any(c.isspace() for c in t)]:
        raise CaseError(f"a tag is one word, e.g. topic:billing (got {bad[0]!r})")
    with db.session(url) as s:
        row = s.get(EvalCase, case_id)
        if row is None:
            raise CaseError(f"no eval case with id {case_id}")
        tags = [t for t in row.tags if t not in remove]
        row.tags = tags + [t for t in add if t not in tags]
        audit.record(s, lead, "eval_case_tagged", conversation_id=row.conversation_id, draft_id=row.draft_id,
                     case_id=row.id, added=list(add), removed=list(remove))
        return row
