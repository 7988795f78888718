"""Reading the eval flags reps set on the review page (see models/evalflags.py)."""

from __future__ import annotations

from sqlmodel import col, select

from mailagent.store import db
from mailagent.store.models import Conversation, EvalFlag


def listing(url: str, open_only: bool = False, limit: int = 500) -> list[tuple[EvalFlag, Conversation]]:
    """Newest first; `open_only`: the ones no eval case was made from yet."""
    with db.reading(url) as s:
        query = (select(EvalFlag, Conversation).join(Conversation, col(EvalFlag.conversation_id) == Conversation.id)
                 .order_by(col(EvalFlag.id).desc()).limit(limit))
        if open_only:
            query = query.where(col(EvalFlag.handled_at).is_(None))
        return list(s.exec(query).all())
