"""channel health

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-15 09:00:00.000000
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import inbox.models.types

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Existing channels read as healthy: nothing has been said about them yet.
    with op.batch_alter_table('channels', schema=None) as batch_op:
        batch_op.add_column(sa.Column('health', sqlmodel.sql.sqltypes.AutoString(length=16), server_default='ok', nullable=False))
        batch_op.add_column(sa.Column('health_reason', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('health_changed_at', inbox.models.types.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('channels', schema=None) as batch_op:
        batch_op.drop_column('health_changed_at')
        batch_op.drop_column('health_reason')
        batch_op.drop_column('health')
