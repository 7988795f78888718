"""message: the sender authentication verdict (who sent it, by DMARC, DKIM or SPF);
watcher_health: what supervised IDLE watchers report, for /healthz

Revision ID: 0008
Revises: 0006
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0008'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TEXT = ("sender_auth_method", "sender_auth_domain", "sender_auth_reason")


def upgrade() -> None:
    with op.batch_alter_table("message") as batch:
        batch.add_column(sa.Column("sender_authenticated", sa.Boolean(), nullable=True))
        for column in TEXT:
            batch.add_column(sa.Column(column, sqlmodel.sql.sqltypes.AutoString(), nullable=False, server_default=""))
    op.create_table(
        "watcher_health",
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(), primary_key=True),
        sa.Column("process", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("restarts", sa.Integer(), nullable=False),
        sa.Column("last_error", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("last_error_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("beat_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("watcher_health")
    with op.batch_alter_table("message") as batch:
        for column in reversed(TEXT):
            batch.drop_column(column)
        batch.drop_column("sender_authenticated")
