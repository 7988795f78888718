"""message: the sender authentication verdict (who sent it, by DMARC, DKIM or SPF)

Revision ID: 0008
Revises: 0005
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0008'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TEXT = ("sender_auth_method", "sender_auth_domain", "sender_auth_reason")


def upgrade() -> None:
    with op.batch_alter_table("message") as batch:
        batch.add_column(sa.Column("sender_authenticated", sa.Boolean(), nullable=True))
        for column in TEXT:
            batch.add_column(sa.Column(column, sa.String(), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("message") as batch:
        for column in reversed(TEXT):
            batch.drop_column(column)
        batch.drop_column("sender_authenticated")
