"""helpdesk tickets as conversations

A conversation has a channel (`email`, `zendesk`, `helpscout`); a helpdesk ticket is one
conversation, named by its helpdesk and ticket id (unique together). A helpdesk post knows its
conversation, which rep approved it (auto-sent replies count against the auto-send caps like mail)
and the tags it removes (a rep's decision tags, once acted on). Events and posts that failed
for a while carry when to try them next, so the sweeper does not retry them at once.

Revision ID: 0013
Revises: 0011
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0013'
down_revision: str | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("conversation") as batch:
        batch.add_column(sa.Column("channel", sa.String(), nullable=False, server_default="email"))
        batch.add_column(sa.Column("helpdesk", sa.String(), nullable=True))
        batch.add_column(sa.Column("ticket_id", sa.String(), nullable=True))
        batch.create_unique_constraint("uq_conversation_helpdesk_ticket", ["helpdesk", "ticket_id"])
    with op.batch_alter_table("helpdesk_post") as batch:
        batch.add_column(sa.Column("remove_tags", sa.JSON(), nullable=False, server_default="[]"))
        batch.add_column(sa.Column("conversation_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("approved_by", sa.String(), nullable=True))
        batch.create_foreign_key("fk_helpdesk_post_conversation_id", "conversation", ["conversation_id"], ["id"])
        batch.create_index("ix_helpdesk_post_conversation_id", ["conversation_id"])
        batch.add_column(sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("helpdesk_event") as batch:
        batch.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("helpdesk_event") as batch:
        batch.drop_column("next_attempt_at")
        batch.drop_column("attempts")
    with op.batch_alter_table("helpdesk_post") as batch:
        batch.drop_column("next_attempt_at")
        batch.drop_index("ix_helpdesk_post_conversation_id")
        batch.drop_constraint("fk_helpdesk_post_conversation_id", type_="foreignkey")
        batch.drop_column("approved_by")
        batch.drop_column("conversation_id")
        batch.drop_column("remove_tags")
    with op.batch_alter_table("conversation") as batch:
        batch.drop_constraint("uq_conversation_helpdesk_ticket", type_="unique")
        batch.drop_column("ticket_id")
        batch.drop_column("helpdesk")
        batch.drop_column("channel")
