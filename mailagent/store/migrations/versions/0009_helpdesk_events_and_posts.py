"""helpdesk events and posts

helpdesk_event keeps every verified webhook delivery (raw body, dedup key from the signed bytes);
helpdesk_post is the ledger that posts each note or reply to a helpdesk once (a marker per post).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 13:41:47.281032
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('helpdesk_event',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('helpdesk', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('dedup_key', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('event_type', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('ticket_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('actor_id', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('scope', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('tags', sa.JSON(), nullable=False),
    sa.Column('raw', sa.LargeBinary(), nullable=False),
    sa.Column('headers', sa.JSON(), nullable=False),
    sa.Column('deliveries', sa.Integer(), nullable=False),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('received_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('processed_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('dedup_key')
    )
    with op.batch_alter_table('helpdesk_event', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_helpdesk_event_helpdesk'), ['helpdesk'], unique=False)
        batch_op.create_index(batch_op.f('ix_helpdesk_event_received_at'), ['received_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_helpdesk_event_state'), ['state'], unique=False)
        batch_op.create_index(batch_op.f('ix_helpdesk_event_ticket_id'), ['ticket_id'], unique=False)

    op.create_table('helpdesk_post',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('helpdesk', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('ticket_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('html', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('author_id', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('tags', sa.JSON(), nullable=False),
    sa.Column('marker', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('draft_id', sa.Integer(), nullable=True),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('comment_id', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('replayed', sa.Boolean(), nullable=False),
    sa.Column('last_error', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('posting_started_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('posted_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['draft_id'], ['draft.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('marker')
    )
    with op.batch_alter_table('helpdesk_post', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_helpdesk_post_draft_id'), ['draft_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_helpdesk_post_helpdesk'), ['helpdesk'], unique=False)
        batch_op.create_index(batch_op.f('ix_helpdesk_post_state'), ['state'], unique=False)
        batch_op.create_index(batch_op.f('ix_helpdesk_post_ticket_id'), ['ticket_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('helpdesk_post', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_helpdesk_post_ticket_id'))
        batch_op.drop_index(batch_op.f('ix_helpdesk_post_state'))
        batch_op.drop_index(batch_op.f('ix_helpdesk_post_helpdesk'))
        batch_op.drop_index(batch_op.f('ix_helpdesk_post_draft_id'))

    op.drop_table('helpdesk_post')
    with op.batch_alter_table('helpdesk_event', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_helpdesk_event_ticket_id'))
        batch_op.drop_index(batch_op.f('ix_helpdesk_event_state'))
        batch_op.drop_index(batch_op.f('ix_helpdesk_event_received_at'))
        batch_op.drop_index(batch_op.f('ix_helpdesk_event_helpdesk'))

    op.drop_table('helpdesk_event')
