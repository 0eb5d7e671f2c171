"""refresh tokens

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 21:00:00.000000
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import inbox.models.types

revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('refresh_families',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('organization_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('created_at', inbox.models.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', inbox.models.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('ended_at', inbox.models.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('end_reason', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.ForeignKeyConstraint(['organization_id'], ['organizations.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('refresh_families', schema=None) as batch_op:
        batch_op.create_index('ix_refresh_families_expires_at', ['expires_at'], unique=False)
        batch_op.create_index('ix_refresh_families_user', ['user_id'], unique=False)

    op.create_table('refresh_tokens',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('organization_id', sa.Integer(), nullable=False),
    sa.Column('family_id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', inbox.models.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', inbox.models.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('used_at', inbox.models.types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['family_id'], ['refresh_families.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['organization_id'], ['organizations.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('token_hash')
    )
    with op.batch_alter_table('refresh_tokens', schema=None) as batch_op:
        batch_op.create_index('ix_refresh_tokens_expires_at', ['expires_at'], unique=False)
        batch_op.create_index('ix_refresh_tokens_family', ['family_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('refresh_tokens', schema=None) as batch_op:
        batch_op.drop_index('ix_refresh_tokens_family')
        batch_op.drop_index('ix_refresh_tokens_expires_at')
    op.drop_table('refresh_tokens')

    with op.batch_alter_table('refresh_families', schema=None) as batch_op:
        batch_op.drop_index('ix_refresh_families_user')
        batch_op.drop_index('ix_refresh_families_expires_at')
    op.drop_table('refresh_families')
