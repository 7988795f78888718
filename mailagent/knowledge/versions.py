"""Article history, and how accepted suggestions and the article files live together.

The files in the knowledge folder are what `kb sync` makes the `article` table match, with one
exception: an article version written by an accepted suggestion stands until its file changes.

- An accepted edit of an article records the hash of the file the article came from; syncs keep
  the edit while that file is unchanged, and the file wins as soon as someone edits it (so ops
  fold accepted suggestions into the files at their own pace: `kb suggestions show` prints the
  article as a file to paste).
- A new article from a suggestion has no file; syncs keep it until a file with its id appears,
  which then wins.

Every change, by a sync or a suggestion, adds a row to `article_version`: an article keeps its
whole history, and the full-text index follows the `article` row at once (triggers on SQLite, a
generated column on PostgreSQL).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from mailagent.store import knowledge as store_knowledge
from mailagent.store.db import Session
from mailagent.store.knowledge import history  # noqa: F401 - the review page reads an article's history here
from mailagent.store.models import Article, ArticleVersion, now

SUGGESTION = "suggestion"
FILE = "file"


def stands(last: ArticleVersion | None, file_sha256: str | None) -> bool:
    """Whether a sync keeps the current version instead of the file (`None`: there is no file)."""
    return last is not None and last.origin == SUGGESTION and last.file_sha256 == (file_sha256 or "")


def record(s: Session, article: Article, origin: str, *, file_sha256: str = "", suggestion_id: int | None = None,
           author: str = "") -> ArticleVersion:
    """Add the article as it is now to its history."""
    number = store_knowledge.last_number(s, article.id)
    version = ArticleVersion(article_id=article.id, version=(number or 0) + 1, title=article.title,
                             tags=list(article.tags), locale=article.locale, intent=article.intent, body=article.body,
                             origin=origin, file_sha256=file_sha256, suggestion_id=suggestion_id, author=author)
    s.add(version)
    s.flush()
    return version


def publish(s: Session, *, article_id: str, title: str, tags: Sequence[str], locale: str, intent: str, body: str,
            author: str, suggestion_id: int) -> ArticleVersion:
    """Write an accepted suggestion as the article's current version (and searchable at once)."""
    row = s.get(Article, article_id)
    previous = store_knowledge.latest_version(s, article_id)
    over = previous.file_sha256 if previous else (row.sha256 if row is not None else "")
    columns = {"title": title, "tags": list(tags), "locale": locale, "intent": intent, "body": body,
               "path": f"{SUGGESTION}:{suggestion_id}", "sha256": hashlib.sha256(body.encode()).hexdigest(),
               "synced_at": now()}
    if row is None:
        row = Article(id=article_id, updated=now().date().isoformat(), **columns)
        s.add(row)
    else:
        row.sqlmodel_update({**columns, "updated": now().date().isoformat()})
    s.flush()
    return record(s, row, SUGGESTION, file_sha256=over, suggestion_id=suggestion_id, author=author)

