"""A rep flags a conversation "add to eval set", with a note saying what the right answer is or
what went wrong (and, optionally, the reply it should have had). The flag becomes an eval case at
once (`evals.cases.flag`), and is stored (`eval_flag`, pointing at the case) and audited. The one
way to flag, for the CLI, the review page and helpdesks."""

from __future__ import annotations

from mailagent.config import Settings
from mailagent.evals import cases
from mailagent.review import ReviewError
from mailagent.store import audit, db
from mailagent.store.models import Conversation, Draft, EvalFlag, now

MAX_NOTE = 4000


def flag(settings: Settings, conversation_id: int, rep: str, note: str, draft_id: int | None = None, *,
         reference: str | None = None) -> EvalFlag:
    note = note.strip()
    if not note:
        raise ReviewError("a flag needs a note: say what the right answer is, or what went wrong")
    if len(note) > MAX_NOTE:
        raise ReviewError(f"the note is {len(note)} characters long; keep it under {MAX_NOTE}")
    with db.reading(settings.database.url) as s:
        if s.get(Conversation, conversation_id) is None:
            raise ReviewError(f"no conversation with id {conversation_id}")
        if draft_id is not None:
            draft = s.get(Draft, draft_id)
            if draft is None or draft.conversation_id != conversation_id:
                raise ReviewError(f"draft {draft_id} is not part of conversation {conversation_id}")
    try:
        case = cases.flag(settings, conversation_id, rep, note, reference=reference, draft_id=draft_id)
    except cases.CaseError as exc:
        raise ReviewError(str(exc)) from None
    with db.session(settings.database.url) as s:
        row = EvalFlag(conversation_id=conversation_id, draft_id=case.draft_id, note=note, flagged_by=rep,
                       eval_case_id=case.id, handled_at=now())
        s.add(row)
        s.flush()
        audit.record(s, rep, "eval_flagged", conversation_id=conversation_id, draft_id=case.draft_id, flag_id=row.id,
                     eval_case_id=case.id)
        return row
