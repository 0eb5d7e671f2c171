"""Channels: connecting one, and the look-ups the web edge needs that the cache does not keep."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from connectors.settings import ChannelSettings, GenericSettings, settings_model

from ..db import Database
from ..errors import Conflict, NotFound, validation_failed
from ..models import Channel, Organization
from .channel_cache import ChannelCache
from .channel_secrets import ChannelSecrets


def parse_settings(kind: str, values: dict[str, Any]) -> ChannelSettings:
    """A kind's settings from plain values; a refusal names each field under ``settings``."""
    try:
        return settings_model(kind).model_validate(values)
    except ValidationError as exc:
        raise validation_failed(exc, prefix=("settings",)) from None


def routing_conflict(kind: str) -> Conflict:
    """A routing key already taken: it routes one channel in the whole service, so the
    answer is the same whichever organization holds it, and names neither it nor the key."""
    routing_field = settings_model(kind).routing_field
    field = f"settings.{routing_field}" if routing_field else "settings"
    message = f"is already connected to a {kind} channel"
    return Conflict(
        f"{field}: {message}",
        {"fields": [{"field": field, "message": message, "type": "conflict"}]},
    )


async def create_channel(
    db: Database,
    secrets: ChannelSecrets,
    organization_id: int,
    *,
    kind: str,
    name: str,
    settings: ChannelSettings,
    is_active: bool = True,
) -> Channel:
    """Connect a channel, its secrets sealed; NotFound for an unknown organization,
    Conflict when its routing key is taken. Callers holding a channel cache invalidate it."""
    channel = Channel(
        organization_id=organization_id,
        kind=kind,
        name=name,
        routing_key=settings.routing_key(),
        settings=secrets.seal(settings),
        is_active=is_active,
    )
    async with db.session() as session:
        if await session.get(Organization, organization_id) is None:
            raise NotFound(f"Organization {organization_id} not found")
        session.add(channel)
        try:
            await session.commit()
        except IntegrityError:
            raise routing_conflict(kind) from None
    return channel


async def generic_channel(db: Database, channels: ChannelCache, organization_id: int) -> Channel:
    """The organization's channel for normalized messages, made by the first one;
    NotFound when it is deactivated."""
    channel = await channels.generic(organization_id)
    if channel is None:
        # Absence is not cached, so there is nothing to invalidate.
        channel = await create_channel(
            db,
            channels.secrets,
            organization_id,
            kind="generic",
            name="API",
            settings=GenericSettings(),
        )
    if not channel.is_active:
        raise NotFound("The organization's generic channel is deactivated")
    return channel


async def active_settings(
    db: Database, kind: str, opened: Callable[[Channel], ChannelSettings]
) -> list[ChannelSettings]:
    """The settings of every active channel of ``kind``, read afresh: a channel made a
    moment ago through another process is found at once. ``opened`` decrypts a row."""
    async with db.session() as session:
        rows = await session.exec(
            select(Channel).where(col(Channel.kind) == kind, col(Channel.is_active))
        )
        return [opened(row) for row in rows]
