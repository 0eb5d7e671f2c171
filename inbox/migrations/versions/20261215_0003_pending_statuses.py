"""pending statuses

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-15 10:00:00.000000
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import inbox.models.types

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('pending_statuses',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('channel_id', sa.Integer(), nullable=False),
    sa.Column('external_id', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('error_code', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('received_at', inbox.models.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['channel_id'], ['channels.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('pending_statuses', schema=None) as batch_op:
        batch_op.create_index('ix_pending_statuses_message', ['channel_id', 'external_id'], unique=False)
        batch_op.create_index('ix_pending_statuses_received', ['received_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('pending_statuses', schema=None) as batch_op:
        batch_op.drop_index('ix_pending_statuses_received')
        batch_op.drop_index('ix_pending_statuses_message')

    op.drop_table('pending_statuses')
