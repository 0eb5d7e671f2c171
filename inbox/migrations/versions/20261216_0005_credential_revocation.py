"""credential revocation

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-16 10:00:00.000000
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import inbox.models.types

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Tokens issued before carry no epoch and count as epoch 0: they keep working until
    # their user's first password change, deactivation or sign-out everywhere.
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('session_epoch', sa.Integer(), server_default='0', nullable=False))

    # Existing keys keep doing what they did (the REST API and /ws; the generic webhook
    # now needs a key with the ingest scope) and belong to whoever made them.
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.add_column(sa.Column('scopes', sqlmodel.sql.sqltypes.AutoString(length=64), server_default='api', nullable=False))
        batch_op.add_column(sa.Column('owner_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('expires_at', inbox.models.types.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_api_keys_owner', ['owner_id'], unique=False)
        batch_op.create_foreign_key('fk_api_keys_owner_id_users', 'users', ['owner_id'], ['id'], ondelete='CASCADE')
    op.execute('UPDATE api_keys SET owner_id = created_by_id')

    op.create_table('used_tickets',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('expires_at', inbox.models.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('used_tickets', schema=None) as batch_op:
        batch_op.create_index('ix_used_tickets_expires_at', ['expires_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('used_tickets', schema=None) as batch_op:
        batch_op.drop_index('ix_used_tickets_expires_at')
    op.drop_table('used_tickets')

    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.drop_constraint('fk_api_keys_owner_id_users', type_='foreignkey')
        batch_op.drop_index('ix_api_keys_owner')
        batch_op.drop_column('expires_at')
        batch_op.drop_column('owner_id')
        batch_op.drop_column('scopes')

    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('session_epoch')
