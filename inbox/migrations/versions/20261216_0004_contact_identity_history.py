"""contact identity history

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-16 10:00:00.000000
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import inbox.models.types

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('contact_identities', schema=None) as batch_op:
        batch_op.add_column(sa.Column('profile_name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True))
        batch_op.add_column(sa.Column('former_names', inbox.models.types.JSONType, server_default='[]', nullable=False))
        batch_op.add_column(sa.Column('user_id', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True))
        batch_op.add_column(sa.Column('replaced_at', inbox.models.types.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_contact_identities_user_id', ['organization_id', 'kind', 'user_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('contact_identities', schema=None) as batch_op:
        batch_op.drop_index('ix_contact_identities_user_id')
        batch_op.drop_column('replaced_at')
        batch_op.drop_column('user_id')
        batch_op.drop_column('former_names')
        batch_op.drop_column('profile_name')
