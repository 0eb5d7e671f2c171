"""idempotency per credential

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-16 10:00:00.000000
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# SQLite rebuilds the table to change a constraint; the rebuilt one must keep never
# reusing a deleted message's id.
_MESSAGES = {'table_kwargs': {'sqlite_autoincrement': True}}


def upgrade() -> None:
    with op.batch_alter_table('messages', schema=None, **_MESSAGES) as batch_op:
        batch_op.add_column(sa.Column('idempotency_scope', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
        batch_op.add_column(sa.Column('idempotency_digest', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))

    # A key sent by a user is theirs; one sent with an API key names no key we can tell,
    # and is left unscoped: it no longer matches any new request. Digests are unknown, so
    # a retry of a message stored before answers with it, as it did.
    op.execute(
        "UPDATE messages SET idempotency_scope = 'user:' || sender_user_id "
        "WHERE idempotency_key IS NOT NULL AND sender_user_id IS NOT NULL"
    )

    with op.batch_alter_table('messages', schema=None, **_MESSAGES) as batch_op:
        batch_op.drop_constraint('uq_message_idempotency', type_='unique')
        batch_op.create_unique_constraint('uq_message_idempotency', ['organization_id', 'idempotency_scope', 'idempotency_key'])


def downgrade() -> None:
    # Keys were unique per credential; unique per organization again, only the first
    # message of each keeps its key (the messages themselves are all kept).
    op.execute(
        "UPDATE messages SET idempotency_key = NULL WHERE idempotency_key IS NOT NULL "
        "AND id NOT IN (SELECT first_id FROM (SELECT MIN(id) AS first_id FROM messages "
        "WHERE idempotency_key IS NOT NULL GROUP BY organization_id, idempotency_key) AS firsts)"
    )
    with op.batch_alter_table('messages', schema=None, **_MESSAGES) as batch_op:
        batch_op.drop_constraint('uq_message_idempotency', type_='unique')
        batch_op.create_unique_constraint('uq_message_idempotency', ['organization_id', 'idempotency_key'])

    with op.batch_alter_table('messages', schema=None, **_MESSAGES) as batch_op:
        batch_op.drop_column('idempotency_digest')
        batch_op.drop_column('idempotency_scope')
