"""learning loop: eval cases, runs and results, daily quality figures, article versions and
knowledge suggestions; the request snapshot on drafts

No foreign keys from eval cases to mail: a case keeps its own snapshot and outlives its
conversation. `draft.request` is a plain ADD COLUMN (no table rebuild on SQLite).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 13:41:38.022704
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('article_version',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('article_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('title', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('tags', sa.JSON(), nullable=False),
    sa.Column('locale', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('intent', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('body', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('origin', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('file_sha256', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('suggestion_id', sa.Integer(), nullable=True),
    sa.Column('author', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('article_id', 'version')
    )
    with op.batch_alter_table('article_version', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_article_version_article_id'), ['article_id'], unique=False)

    op.create_table('eval_case',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('origin', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('conversation_id', sa.Integer(), nullable=True),
    sa.Column('draft_id', sa.Integer(), nullable=True),
    sa.Column('feedback_id', sa.Integer(), nullable=True),
    sa.Column('request', sa.JSON(), nullable=False),
    sa.Column('draft', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('draft_meta', sa.JSON(), nullable=False),
    sa.Column('reference', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('changes', sa.JSON(), nullable=False),
    sa.Column('tags', sa.JSON(), nullable=False),
    sa.Column('reviewer', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('note', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('rep_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('curated_by', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('curated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('suggested', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('origin')
    )
    with op.batch_alter_table('eval_case', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_eval_case_conversation_id'), ['conversation_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_eval_case_feedback_id'), ['feedback_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_eval_case_source'), ['source'], unique=False)
        batch_op.create_index(batch_op.f('ix_eval_case_state'), ['state'], unique=False)
        batch_op.create_index(batch_op.f('ix_eval_case_suggested'), ['suggested'], unique=False)

    op.create_table('eval_run',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('set_name', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('config', sa.JSON(), nullable=False),
    sa.Column('baseline_id', sa.Integer(), nullable=True),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('cases', sa.Integer(), nullable=False),
    sa.Column('passed', sa.Integer(), nullable=False),
    sa.Column('score', sa.Float(), nullable=True),
    sa.Column('scores', sa.JSON(), nullable=False),
    sa.Column('gate', sa.JSON(), nullable=False),
    sa.Column('started_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('finished_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('eval_run', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_eval_run_set_name'), ['set_name'], unique=False)

    op.create_table('knowledge_suggestion',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('article_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('base_version', sa.Integer(), nullable=True),
    sa.Column('title', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('locale', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('intent', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('tags', sa.JSON(), nullable=False),
    sa.Column('body', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('facts', sa.JSON(), nullable=False),
    sa.Column('case_ids', sa.JSON(), nullable=False),
    sa.Column('conversation_ids', sa.JSON(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('decided_by', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('decided_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('knowledge_suggestion', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_knowledge_suggestion_state'), ['state'], unique=False)

    op.create_table('quality_daily',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('value', sa.Float(), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('day', 'name')
    )
    op.create_table('eval_result',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('score', sa.Float(), nullable=False),
    sa.Column('passed', sa.Boolean(), nullable=False),
    sa.Column('grades', sa.JSON(), nullable=False),
    sa.Column('reply', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('decision', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('rule', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('flags', sa.JSON(), nullable=False),
    sa.Column('proposals', sa.JSON(), nullable=False),
    sa.Column('labels', sa.JSON(), nullable=False),
    sa.Column('error', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('trace_id', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('seconds', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['eval_case.id'], ),
    sa.ForeignKeyConstraint(['run_id'], ['eval_run.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('run_id', 'case_id')
    )
    with op.batch_alter_table('eval_result', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_eval_result_run_id'), ['run_id'], unique=False)

    op.add_column('draft', sa.Column('request', sa.JSON(), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('draft', schema=None) as batch_op:
        batch_op.drop_column('request')

    with op.batch_alter_table('eval_result', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_eval_result_run_id'))

    op.drop_table('eval_result')
    op.drop_table('quality_daily')
    with op.batch_alter_table('knowledge_suggestion', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_knowledge_suggestion_state'))

    op.drop_table('knowledge_suggestion')
    with op.batch_alter_table('eval_run', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_eval_run_set_name'))

    op.drop_table('eval_run')
    with op.batch_alter_table('eval_case', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_eval_case_suggested'))
        batch_op.drop_index(batch_op.f('ix_eval_case_state'))
        batch_op.drop_index(batch_op.f('ix_eval_case_source'))
        batch_op.drop_index(batch_op.f('ix_eval_case_feedback_id'))
        batch_op.drop_index(batch_op.f('ix_eval_case_conversation_id'))

    op.drop_table('eval_case')
    with op.batch_alter_table('article_version', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_article_version_article_id'))

    op.drop_table('article_version')
