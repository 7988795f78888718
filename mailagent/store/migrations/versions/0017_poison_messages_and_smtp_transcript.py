"""poison messages and the SMTP transcript of a delivery

A message counts its processing attempts and keeps the last error; one that keeps failing ends
`failed` (a poison message, shown with its reason) instead of being retried forever. An outbound
reply keeps the SMTP phase its last attempt reached and the server's last answer, so a rep can
settle an `unknown` delivery, and who settled it by hand.

Revision ID: 0017
Revises: 0013
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0017'
down_revision: str | None = '0015'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("message") as batch:
        batch.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("error", sa.String(), nullable=True))
    with op.batch_alter_table("outbound") as batch:
        batch.add_column(sa.Column("smtp_phase", sa.String(), nullable=True))
        batch.add_column(sa.Column("smtp_last_reply", sa.String(), nullable=True))
        batch.add_column(sa.Column("resolved_by", sa.String(), nullable=True))
        batch.add_column(sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbound") as batch:
        for column in ("resolved_at", "resolved_by", "smtp_last_reply", "smtp_phase"):
            batch.drop_column(column)
    with op.batch_alter_table("message") as batch:
        batch.drop_column("error")
        batch.drop_column("attempts")
