"""The knowledge base's queries: articles, their versions, and the full-text index that finds
search candidates (migration 0003: FTS5 on SQLite, a tsvector on PostgreSQL). Scoring is not here:
`knowledge/search.py` ranks the candidates the same way on both engines."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Table, column, func, text
from sqlalchemy import select as core_select
from sqlmodel import Session, col, select

from mailagent.store.models import Article, ArticleVersion

_TEXT = (Article.id, Article.sha256, Article.title, Article.tags, Article.locale, Article.intent, Article.body)


def articles(s: Session) -> dict[str, Article]:
    """Every article, by id."""
    return {row.id: row for row in s.exec(select(Article))}


def candidates(s: Session, terms: Sequence[str], min_prefix: int) -> list[Any]:
    """Rows (id, sha256, total) of the articles with any of the terms, `total` being the number of
    articles; terms of `min_prefix` letters or more match as prefixes. The terms are words
    (letters and digits only), so user text can never be read as FTS syntax."""
    conn = s.connection()
    if conn.dialect.name == "sqlite":
        match = " OR ".join(f'"{t}"*' if len(t) >= min_prefix else f'"{t}"' for t in terms)
        return list(conn.execute(_CANDIDATES_SQLITE, {"match": match}).all())
    match = " | ".join(f"{t}:*" if len(t) >= min_prefix else t for t in terms)
    return list(conn.execute(_CANDIDATES_POSTGRESQL, {"match": match}).all())


def texts(s: Session, ids: Sequence[str]) -> list[Any]:
    """Rows (id, sha256, title, tags, locale, intent, body) of the articles named: what search
    reads only for articles it has not cached."""
    return list(s.exec(select(*_TEXT).where(col(Article.id).in_(ids))).all())


def latest_versions(s: Session) -> dict[str, ArticleVersion]:
    """The newest version of every article that has one."""
    newest = select(ArticleVersion.article_id, func.max(ArticleVersion.version).label("v")) \
        .group_by(col(ArticleVersion.article_id)).subquery()
    rows = s.exec(select(ArticleVersion).join(newest, (col(ArticleVersion.article_id) == newest.c.article_id)
                                              & (col(ArticleVersion.version) == newest.c.v)))
    return {row.article_id: row for row in rows}


def latest_version(s: Session, article_id: str) -> ArticleVersion | None:
    return s.exec(select(ArticleVersion).where(ArticleVersion.article_id == article_id)
                  .order_by(col(ArticleVersion.version).desc())).first()


def version(s: Session, article_id: str, number: int | None) -> ArticleVersion | None:
    return s.exec(select(ArticleVersion).where(ArticleVersion.article_id == article_id,
                                               ArticleVersion.version == number)).first()


def history(s: Session, article_id: str) -> list[ArticleVersion]:
    """An article's versions, oldest first."""
    return list(s.exec(select(ArticleVersion).where(ArticleVersion.article_id == article_id)
                       .order_by(col(ArticleVersion.version))))


def last_number(s: Session, article_id: str) -> int | None:
    """The article's highest version number (None before its first version)."""
    return s.exec(select(func.max(ArticleVersion.version)).where(ArticleVersion.article_id == article_id)).one()


# The candidate queries, built once (SQLAlchemy Core: compiled once per engine and cached): a
# search runs one per call of the agent's knowledge tool.
_article: Table = Article.__table__  # type: ignore[assignment]
_CANDIDATE_COLUMNS = core_select(_article.c.id, _article.c.sha256,
                                 core_select(func.count()).select_from(_article).scalar_subquery().label("total"))
_CANDIDATES_SQLITE = _CANDIDATE_COLUMNS.where(_article.c.id.in_(
    text("SELECT id FROM article_fts WHERE article_fts MATCH :match").columns(column("id"))))
_CANDIDATES_POSTGRESQL = _CANDIDATE_COLUMNS.where(text("article.search @@ to_tsquery('simple', :match)"))


def is_search_index(name: str | None, type_: str, parent_names: Mapping[str, str | None]) -> bool:
    """Whether a database object belongs to the full-text index (migration 0003), which the models
    do not describe; alembic's `include_name` hook uses this to leave it out of autogenerate."""
    if type_ == "table":
        return name == "article_fts" or (name or "").startswith("article_fts_")    # FTS5 and its shadows
    if type_ == "column":
        return parent_names.get("table_name") == "article" and name == "search"
    return type_ == "index" and name == "ix_article_search"
