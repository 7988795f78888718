"""knowledge search: a full-text index over articles

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 01:30:00

Both indexes are kept current by the database itself, so every writer of `article` (the sync, a
test, an operator with a SQL shell) leaves them consistent:

- SQLite: an FTS5 table `article_fts` with its own copy of the text, maintained by triggers. It is
  keyed by `article.id`, not by rowid: `article` has a text primary key, so VACUUM may renumber
  its rowids.
- PostgreSQL: a generated `tsvector` column `article.search` with a GIN index.

Both index the same words: runs of letters and digits, lower case, accents folded, neither stemmed
nor filtered (the search code stems the query and drops its stopwords). SQLite's unicode61
tokenizer does that itself; on PostgreSQL `regexp_replace` turns punctuation into spaces,
`translate` folds the accents of en/de/es (no extension needed), and the 'simple' configuration
lower-cases.
The models do not describe these objects: `store.knowledge.is_search_index` names them for
autogenerate's `include_name` (see `migrations/env.py`). On SQLite, a later batch migration of
`article` recreates the table and drops its triggers: such a migration must recreate them.
"""
from collections.abc import Sequence

from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ACCENTED = "ÀÁÂÃÄÅàáâãäåÇçÈÉÊËèéêëÌÍÎÏìíîïÑñÒÓÔÕÖòóôõöÙÚÛÜùúûüÝýÿ"
PLAIN = "AAAAAAaaaaaaCcEEEEeeeeIIIIiiiiNnOOOOOoooooUUUUuuuuYyy"

SQLITE_UPGRADE = [
    """CREATE VIRTUAL TABLE article_fts USING fts5(
           id UNINDEXED, title, tags, body, tokenize = 'unicode61 remove_diacritics 2')""",
    """CREATE TRIGGER article_fts_insert AFTER INSERT ON article BEGIN
           INSERT INTO article_fts (id, title, tags, body) VALUES (new.id, new.title, new.tags, new.body);
       END""",
    """CREATE TRIGGER article_fts_update AFTER UPDATE ON article BEGIN
           DELETE FROM article_fts WHERE id = old.id;
           INSERT INTO article_fts (id, title, tags, body) VALUES (new.id, new.title, new.tags, new.body);
       END""",
    """CREATE TRIGGER article_fts_delete AFTER DELETE ON article BEGIN
           DELETE FROM article_fts WHERE id = old.id;
       END""",
    "INSERT INTO article_fts (id, title, tags, body) SELECT id, title, tags, body FROM article",
]
SQLITE_DOWNGRADE = [
    "DROP TRIGGER article_fts_delete",
    "DROP TRIGGER article_fts_update",
    "DROP TRIGGER article_fts_insert",
    "DROP TABLE article_fts",
]
POSTGRESQL_UPGRADE = [
    f"""ALTER TABLE article ADD COLUMN search tsvector GENERATED ALWAYS AS (to_tsvector('simple'::regconfig,
            translate(regexp_replace(title || ' ' || tags::text || ' ' || body, '[[:punct:]]+', ' ', 'g'),
                      '{ACCENTED}', '{PLAIN}'))) STORED""",
    "CREATE INDEX ix_article_search ON article USING gin (search)",
]
POSTGRESQL_DOWNGRADE = [
    "DROP INDEX ix_article_search",
    "ALTER TABLE article DROP COLUMN search",
]


def upgrade() -> None:
    for statement in SQLITE_UPGRADE if op.get_bind().dialect.name == "sqlite" else POSTGRESQL_UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    for statement in SQLITE_DOWNGRADE if op.get_bind().dialect.name == "sqlite" else POSTGRESQL_DOWNGRADE:
        op.execute(statement)
