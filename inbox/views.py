"""The wire format of each resource: one function per model, used by REST and events alike."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from .errors import NotFound
from .models import Channel, Contact, Conversation, Lead, Message
from .schemas.channels import ChannelPublic
from .schemas.contacts import ContactPublic
from .schemas.conversations import (
    ChannelRef,
    ContactRef,
    ConversationPublic,
    LastMessage,
    MessagePublic,
)
from .schemas.leads import LeadPublic
from .services.channel_secrets import public_view
from .services.reply_window import window_expires_at


def channel_public(channel: Channel) -> ChannelPublic:
    """A channel as admins see it: its settings without a secret (and no key needed)."""
    parsed = public_view(channel)
    return ChannelPublic(
        id=channel.id,
        organization_id=channel.organization_id,
        kind=channel.kind,
        name=channel.name,
        routing_key=channel.routing_key,
        settings=parsed.public(),
        configured_secrets=parsed.configured_secrets(),
        is_active=channel.is_active,
        health=channel.health,
        health_reason=channel.health_reason,
        health_changed_at=channel.health_changed_at,
        created_at=channel.created_at,
        updated_at=channel.updated_at,
    )


def channel_data(channel: Channel) -> dict[str, Any]:
    return channel_public(channel).model_dump(mode="json")


def lead_data(lead: Lead) -> dict[str, Any]:
    return LeadPublic.model_validate(lead).model_dump(mode="json")


def contact_data(contact: Contact) -> dict[str, Any]:
    return ContactPublic.model_validate(contact).model_dump(mode="json")


def message_data(message: Message) -> dict[str, Any]:
    return MessagePublic.model_validate(message).model_dump(mode="json")


class ConversationFields(Protocol):
    """What a conversation's wire form is made of: a `Conversation`, or a plain row."""

    @property
    def id(self) -> int | None: ...
    @property
    def organization_id(self) -> int: ...
    @property
    def status(self) -> str: ...
    @property
    def contact_id(self) -> int: ...
    @property
    def channel_id(self) -> int: ...
    @property
    def assignee_id(self) -> int | None: ...
    @property
    def labels(self) -> list[str]: ...
    @property
    def unread_count(self) -> int: ...
    @property
    def last_message_at(self) -> datetime | None: ...
    @property
    def last_message_preview(self) -> str | None: ...
    @property
    def first_response_seconds(self) -> float | None: ...
    @property
    def snoozed_until(self) -> datetime | None: ...
    @property
    def last_inbound_at(self) -> datetime | None: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def updated_at(self) -> datetime: ...


def conversations_with_refs() -> Any:
    return (
        select(Conversation, Contact.name, Channel.kind, Channel.name)
        .join(Contact, col(Contact.id) == col(Conversation.contact_id))
        .join(Channel, col(Channel.id) == col(Conversation.channel_id))
    )


def conversation_public(
    conv: ConversationFields, contact_name: str | None, channel_kind: str, channel_name: str
) -> ConversationPublic:
    return ConversationPublic(
        id=conv.id,
        organization_id=conv.organization_id,
        status=conv.status,
        contact_id=conv.contact_id,
        contact=ContactRef(id=conv.contact_id, name=contact_name),
        channel_id=conv.channel_id,
        channel=ChannelRef(id=conv.channel_id, kind=channel_kind, name=channel_name),
        assignee_id=conv.assignee_id,
        labels=conv.labels,
        unread_count=conv.unread_count,
        last_message_at=conv.last_message_at,
        last_message=LastMessage(preview=conv.last_message_preview, at=conv.last_message_at),
        first_response_seconds=conv.first_response_seconds,
        # A customer's message reopens a snoozed conversation without clearing the time
        # in its row (the ingest core writes its status only); no longer snoozed, it is
        # no time to show.
        snoozed_until=conv.snoozed_until if conv.status == "snoozed" else None,
        reply_window_expires_at=window_expires_at(
            channel_kind, conv.last_inbound_at, conv.created_at
        ),
        created_at=conv.created_at,
        updated_at=conv.updated_at,
    )


async def load_conversation(
    session: AsyncSession, conversation_id: int, org_id: int
) -> ConversationPublic:
    row = (
        await session.exec(
            conversations_with_refs().where(
                col(Conversation.id) == conversation_id,
                col(Conversation.organization_id) == org_id,
            )
        )
    ).first()
    if row is None:
        raise NotFound(f"Conversation {conversation_id} not found")
    return conversation_public(*row)


async def conversation_data(
    session: AsyncSession, conversation_id: int, org_id: int
) -> dict[str, Any]:
    return (await load_conversation(session, conversation_id, org_id)).model_dump(mode="json")
