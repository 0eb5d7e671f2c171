"""media: stored attachments

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 21:00:00.000000
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import inbox.models.types

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('media',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('organization_id', sa.Integer(), nullable=False),
    sa.Column('message_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('attachment_index', sa.Integer(), nullable=True),
    sa.Column('channel_id', sa.Integer(), nullable=True),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('platform_ref', sa.Text(), nullable=True),
    sa.Column('content_type', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('size', sa.BigInteger(), nullable=True),
    sa.Column('sha256', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('storage_key', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('filename', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', inbox.models.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('claimed_at', inbox.models.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', inbox.models.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', inbox.models.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['channel_id'], ['channels.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['message_id'], ['messages.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['organization_id'], ['organizations.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('media', schema=None) as batch_op:
        batch_op.create_index('ix_media_due', ['status', 'next_attempt_at'], unique=False)
        batch_op.create_index('ix_media_message', ['message_id'], unique=False)
        batch_op.create_index('ix_media_org', ['organization_id'], unique=False)


def downgrade() -> None:
    # The files stay in the media directory; without their rows nothing serves them.
    with op.batch_alter_table('media', schema=None) as batch_op:
        batch_op.drop_index('ix_media_org')
        batch_op.drop_index('ix_media_message')
        batch_op.drop_index('ix_media_due')
    op.drop_table('media')
