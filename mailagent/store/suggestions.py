"""Knowledge suggestions as the learning loop and the leads read them (models/knowledge.py)."""

from __future__ import annotations

from sqlmodel import Session, col, select

from mailagent.store.models import Article, KnowledgeSuggestion


def listing(s: Session, state: str | None = None) -> list[KnowledgeSuggestion]:
    """Oldest first; with `state`, only those in it."""
    query = select(KnowledgeSuggestion).order_by(col(KnowledgeSuggestion.id))
    if state:
        query = query.where(KnowledgeSuggestion.state == state)
    return list(s.exec(query))


def taken_ids(s: Session) -> set[str]:
    """Article ids in use: by an article, or by a suggestion (decided or not), so that a new
    suggestion never takes over another's article."""
    return set(s.exec(select(Article.id))) | set(s.exec(select(KnowledgeSuggestion.article_id)))
