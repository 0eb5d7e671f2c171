"""analytics: organization time zone

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04 21:00:00.000000
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import inbox.models.types

revision: str = '0012'
down_revision: str | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Columns are added in place: rebuilding these tables on SQLite would cascade
    # deletes into the rows that reference them.
    op.add_column('organizations', sa.Column('timezone', sqlmodel.sql.sqltypes.AutoString(length=64), server_default='UTC', nullable=False))
    op.add_column('conversations', sa.Column('first_responder_id', sa.Integer(), nullable=True))
    op.add_column('conversations', sa.Column('closed_at', inbox.models.types.UTCDateTime(timezone=True), nullable=True))
    op.add_column('conversations', sa.Column('resolution_seconds', sa.Float(), nullable=True))
    op.create_index('ix_conversations_org_created', 'conversations', ['organization_id', 'created_at', 'channel_id', 'assignee_id'], unique=False)
    op.create_index('ix_conversations_org_closed', 'conversations', ['organization_id', 'closed_at', 'assignee_id'], unique=False)
    op.create_index('ix_conversations_org_status_assignee', 'conversations', ['organization_id', 'status', 'assignee_id'], unique=False)
    op.create_index('ix_conversations_org_responded', 'conversations', ['organization_id', 'first_response_at', 'first_response_seconds', 'first_responder_id', 'channel_id'], unique=False)
    op.create_index('ix_conversations_org_response_order', 'conversations', ['organization_id', 'first_response_seconds', 'first_response_at'], unique=False)
    op.create_index('ix_conversations_org_responder_order', 'conversations', ['organization_id', 'first_responder_id', 'first_response_seconds', 'first_response_at'], unique=False)
    op.create_index('ix_conversations_org_resolution_order', 'conversations', ['organization_id', 'resolution_seconds', 'closed_at'], unique=False)
    op.create_index('ix_contacts_org_created', 'contacts', ['organization_id', 'created_at'], unique=False)
    op.create_index('ix_leads_org_converted', 'leads', ['organization_id', 'converted_at'], unique=False)
    # Conversations closed before this revision: their last change is the best guess.
    op.execute("UPDATE conversations SET closed_at = updated_at WHERE status = 'closed'")
    if op.get_bind().dialect.name == 'postgresql':
        seconds = "EXTRACT(EPOCH FROM closed_at - created_at)"
    else:
        seconds = "(julianday(closed_at) - julianday(created_at)) * 86400.0"
    op.execute(f"UPDATE conversations SET resolution_seconds = {seconds} WHERE closed_at IS NOT NULL")
    op.create_table(
        'message_rollups',
        sa.Column('organization_id', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('slot', sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column('channel_id', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('received', sa.Integer(), server_default='0', nullable=False),
        sa.Column('sent', sa.Integer(), server_default='0', nullable=False),
        sa.ForeignKeyConstraint(['organization_id'], ['organizations.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('organization_id', 'slot', 'channel_id'),
    )
    op.create_table(
        'agent_rollups',
        sa.Column('organization_id', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('slot', sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column('user_id', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('sent', sa.Integer(), server_default='0', nullable=False),
        sa.ForeignKeyConstraint(['organization_id'], ['organizations.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('organization_id', 'slot', 'user_id'),
    )
    # Filled from the messages already stored: `inbox analytics-rebuild` does the same.
    slot = _slot_of('created_at')
    sent = "SUM(CASE WHEN direction = 'outbound' AND NOT private THEN 1 ELSE 0 END)"
    op.execute(
        "INSERT INTO message_rollups (organization_id, slot, channel_id, received, sent) "
        f"SELECT organization_id, {slot}, channel_id, "
        f"SUM(CASE WHEN direction = 'inbound' THEN 1 ELSE 0 END), {sent} "
        "FROM messages GROUP BY 1, 2, 3"
    )
    op.execute(
        "INSERT INTO agent_rollups (organization_id, slot, user_id, sent) "
        f"SELECT organization_id, {slot}, sender_user_id, COUNT(*) FROM messages "
        "WHERE direction = 'outbound' AND NOT private AND sender_user_id IS NOT NULL "
        "GROUP BY 1, 2, 3"
    )


def _slot_of(column: str) -> str:
    if op.get_bind().dialect.name == 'postgresql':
        return f"CAST(FLOOR(EXTRACT(EPOCH FROM {column}) / 900) AS BIGINT)"
    return f"CAST(strftime('%s', {column}) AS INTEGER) / 900"


def downgrade() -> None:
    op.drop_table('agent_rollups')
    op.drop_table('message_rollups')
    op.drop_index('ix_leads_org_converted', table_name='leads')
    op.drop_index('ix_contacts_org_created', table_name='contacts')
    op.drop_index('ix_conversations_org_resolution_order', table_name='conversations')
    op.drop_index('ix_conversations_org_responder_order', table_name='conversations')
    op.drop_index('ix_conversations_org_response_order', table_name='conversations')
    op.drop_index('ix_conversations_org_responded', table_name='conversations')
    op.drop_index('ix_conversations_org_status_assignee', table_name='conversations')
    op.drop_index('ix_conversations_org_closed', table_name='conversations')
    op.drop_index('ix_conversations_org_created', table_name='conversations')
    # In place too (SQLite 3.35 drops a column without rebuilding its table).
    op.drop_column('conversations', 'resolution_seconds')
    op.drop_column('conversations', 'closed_at')
    op.drop_column('conversations', 'first_responder_id')
    op.drop_column('organizations', 'timezone')
