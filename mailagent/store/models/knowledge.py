"""Knowledge that keeps improving: every version of every article (from its file, or from an
accepted suggestion), and the suggestions made from reps' finals."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from mailagent.store.models.base import now


class ArticleVersion(SQLModel, table=True):
    """An article as it was at one point. The `article` row is the current version; this table is
    its history (kept when the article is removed)."""

    __tablename__ = "article_version"
    __table_args__ = (UniqueConstraint("article_id", "version"),)
    id: int | None = Field(default=None, primary_key=True)
    article_id: str = Field(index=True)
    version: int
    title: str
    tags: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    locale: str
    intent: str = ""
    body: str
    origin: str                                     # file | suggestion
    file_sha256: str = ""                           # the file this version is (or was accepted over)
    suggestion_id: int | None = None
    author: str = ""
    created_at: datetime = Field(default_factory=now)


class KnowledgeSuggestion(SQLModel, table=True):
    """A new article, or an edit of a cited one, proposed from what reps wrote that no article
    held, with the eval cases (and so the conversations) it came from."""

    __tablename__ = "knowledge_suggestion"
    id: int | None = Field(default=None, primary_key=True)
    kind: str                                       # new | edit
    state: str = Field(default="open", index=True)  # open | accepted | rejected
    article_id: str                                 # the article to edit, or the id a new one gets
    base_version: int | None = None                 # the version an edit was written against
    title: str
    locale: str
    intent: str = ""
    tags: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    body: str                                       # the whole proposed article body
    facts: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    case_ids: list[int] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    conversation_ids: list[int] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=now)
    decided_by: str | None = None
    decided_at: datetime | None = None
    reason: str = ""
    version: int | None = None                      # the article version accepting it wrote
