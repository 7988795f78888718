"""draft: a lease its holder renews, and the attempts made

A draft being written is claimed by one worker process until `lease_until`; the holder renews it
while the agent runs, so a redelivered message (or the sweeper) can take over at once when the
holder died, and never while it lives. `attempts` counts claims, so a draft that keeps failing
ends held for a person instead of being retried forever.

Revision ID: 0006
Revises: 0005
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("draft") as batch:
        batch.add_column(sa.Column("lease_owner", sa.String(), nullable=True))
        batch.add_column(sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
        batch.create_index("ix_draft_lease_until", ["lease_until"])


def downgrade() -> None:
    with op.batch_alter_table("draft") as batch:
        batch.drop_index("ix_draft_lease_until")
        batch.drop_column("attempts")
        batch.drop_column("lease_until")
        batch.drop_column("lease_owner")
