"""message: database defaults for what the fetch loop does not know yet

The IMAP fetch loop now inserts only a message's raw bytes and identity; sender, subject, text
and the rest are filled in by the workers. Defaults keep those columns NOT NULL meanwhile.

Revision ID: 0005
Revises: 0004
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TEXT = ("from_name", "from_addr", "reply_to", "subject", "kind_reason", "text", "reply_text", "hidden_text",
        "quoted_text", "signature")
LISTS = ("in_reply_to", "references", "attachments", "defects")


def _defaults(text: str | None, lists: str | None, count: str | None) -> None:
    with op.batch_alter_table("message") as batch:
        for column in TEXT:
            batch.alter_column(column, existing_type=sa.String(), existing_nullable=False, server_default=text)
        for column in LISTS:
            batch.alter_column(column, existing_type=sa.JSON(), existing_nullable=False, server_default=lists)
        batch.alter_column("duplicates", existing_type=sa.Integer(), existing_nullable=False, server_default=count)


def upgrade() -> None:
    _defaults("", "[]", "0")


def downgrade() -> None:
    _defaults(None, None, None)
