"""console: sessions, canned responses, snooze

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 18:00:00.000000
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import inbox.models.types

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('console_sessions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('organization_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('user_agent', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True),
    sa.Column('created_at', inbox.models.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_used_at', inbox.models.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', inbox.models.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('ended_at', inbox.models.types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['organization_id'], ['organizations.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('token_hash')
    )
    with op.batch_alter_table('console_sessions', schema=None) as batch_op:
        batch_op.create_index('ix_console_sessions_expires_at', ['expires_at'], unique=False)
        batch_op.create_index('ix_console_sessions_user', ['user_id'], unique=False)

    op.create_table('canned_responses',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('organization_id', sa.Integer(), nullable=False),
    sa.Column('short_code', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('content', sa.Text(), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', inbox.models.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', inbox.models.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['organization_id'], ['organizations.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('organization_id', 'short_code', name='uq_canned_short_code')
    )

    with op.batch_alter_table('conversations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('snoozed_until', inbox.models.types.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_conversations_snoozed_until', ['snoozed_until'], unique=False)


def downgrade() -> None:
    # A snoozed conversation is open again without its timer.
    op.execute("UPDATE conversations SET status = 'open' WHERE status = 'snoozed'")
    op.drop_index('ix_conversations_snoozed_until', table_name='conversations')
    # Dropped in place, not by batch mode: on SQLite that rebuilds the table, and dropping
    # the old conversations table would cascade to every message.
    op.drop_column('conversations', 'snoozed_until')

    op.drop_table('canned_responses')

    with op.batch_alter_table('console_sessions', schema=None) as batch_op:
        batch_op.drop_index('ix_console_sessions_user')
        batch_op.drop_index('ix_console_sessions_expires_at')
    op.drop_table('console_sessions')
