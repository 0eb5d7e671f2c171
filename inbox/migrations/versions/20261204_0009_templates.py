"""templates and the reply window

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 21:00:00.000000
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy.dialects import postgresql

import inbox.models.types

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('message_templates',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('organization_id', sa.Integer(), nullable=False),
    sa.Column('channel_id', sa.Integer(), nullable=False),
    sa.Column('external_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=512), nullable=False),
    sa.Column('language', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('category', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('components', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('parameters', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('updated_at', inbox.models.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['channel_id'], ['channels.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['organization_id'], ['organizations.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('channel_id', 'name', 'language', name='uq_message_template')
    )
    with op.batch_alter_table('message_templates', schema=None) as batch_op:
        batch_op.create_index('ix_message_templates_org', ['organization_id'], unique=False)

    # Added in place, not by batch mode: on SQLite that rebuilds the table, and dropping
    # the old conversations table would cascade to every message.
    op.add_column('conversations', sa.Column('last_inbound_at', inbox.models.types.UTCDateTime(timezone=True), nullable=True))
    # Conversations held before know their customer's latest message from the log.
    op.execute(
        "UPDATE conversations SET last_inbound_at = ("
        "SELECT max(messages.ordered_at) FROM messages "
        "WHERE messages.conversation_id = conversations.id "
        "AND messages.direction = 'inbound')"
    )


def downgrade() -> None:
    op.drop_column('conversations', 'last_inbound_at')
    with op.batch_alter_table('message_templates', schema=None) as batch_op:
        batch_op.drop_index('ix_message_templates_org')
    op.drop_table('message_templates')
