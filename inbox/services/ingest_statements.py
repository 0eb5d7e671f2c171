"""The ingest core's statements, built once: building one costs about as much as
running it."""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import bindparam, case, select, update
from sqlalchemy.dialects import postgresql, sqlite

from ..models import Contact, ContactIdentity, Conversation, Message, table_of

_MESSAGES = table_of(Message)
_CONVERSATIONS = table_of(Conversation)
_CONTACTS = table_of(Contact)
_IDENTITIES = table_of(ContactIdentity)

# Locked in id order, so that two transactions locking some of the same contacts
# take them in the same order and cannot deadlock.
CONTACTS_OF = (
    select(
        _IDENTITIES.c.external_id,
        _CONTACTS.c.id,
        _CONTACTS.c.name,
        _IDENTITIES.c.profile_name,
        _IDENTITIES.c.user_id,
    )
    .join_from(_IDENTITIES, _CONTACTS, _CONTACTS.c.id == _IDENTITIES.c.contact_id)
    .where(
        _IDENTITIES.c.organization_id == bindparam("org_id"),
        _IDENTITIES.c.kind == bindparam("kind"),
        _IDENTITIES.c.external_id.in_(bindparam("sender_ids", expanding=True)),
    )
    .order_by(_CONTACTS.c.id)
    .with_for_update(of=_CONTACTS)
)
# Ascending, so that the last row of a contact is its newest open conversation.
# Locked until commit, so what the batch holds in memory is what gets committed.
OPEN_CONVERSATIONS = (
    select(_CONVERSATIONS)
    .where(
        _CONVERSATIONS.c.channel_id == bindparam("channel_id"),
        _CONVERSATIONS.c.contact_id.in_(bindparam("contact_ids", expanding=True)),
        _CONVERSATIONS.c.status != "closed",
    )
    .order_by(_CONVERSATIONS.c.id)
    .with_for_update()
)
LATEST_CONVERSATION = (
    select(_CONVERSATIONS)
    .where(
        _CONVERSATIONS.c.channel_id == bindparam("channel_id"),
        _CONVERSATIONS.c.contact_id == bindparam("contact_id"),
    )
    .order_by(_CONVERSATIONS.c.id.desc())
    .limit(1)
    .with_for_update()
)
STORED = select(_MESSAGES.c.id).where(
    _MESSAGES.c.channel_id == bindparam("channel_id"),
    _MESSAGES.c.external_id == bindparam("external_id"),
)
UPDATE_CONVERSATION = (
    update(_CONVERSATIONS)
    .where(_CONVERSATIONS.c.id == bindparam("b_id"))
    .values(
        status=bindparam("b_status"),
        # A customer's message ends a snooze: its time goes with it.
        snoozed_until=case(
            (bindparam("b_status") == "snoozed", _CONVERSATIONS.c.snoozed_until), else_=None
        ),
        unread_count=bindparam("b_unread_count"),
        last_message_at=bindparam("b_last_message_at"),
        last_message_preview=bindparam("b_last_message_preview"),
        last_inbound_at=bindparam("b_last_inbound_at"),
        updated_at=bindparam("b_updated_at"),
    )
)


@functools.cache
def insert_message(dialect: str, *returning: str) -> Any:
    """INSERT of messages that does nothing for a platform id stored already: the
    unique key decides, and only the rows stored answer their ``returning`` columns."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return (
        insert(_MESSAGES)
        .on_conflict_do_nothing(index_elements=["channel_id", "external_id"])
        .returning(*(_MESSAGES.c[name] for name in returning))
    )
