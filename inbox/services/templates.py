"""WhatsApp message templates: kept in step with the Business Account, and filled for
a message.

The platform's list is the truth: a sync writes every template it lists and removes
the ones it no longer does. A template status webhook changes the status of the one
it names at once; one naming a template never synced (or an event not understood
here) has the channel's list read again, off the webhook path (`TemplateResync`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import delete, tuple_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from connectors.whatsapp_templates import (
    FilledTemplate,
    Template,
    TemplateError,
    fetch_templates,
    fill,
    requirements,
)

from ..db import Database
from ..errors import field_error
from ..models import Channel, MessageTemplate, utcnow
from .channel_secrets import ChannelSecrets

log = logging.getLogger("inbox.templates")

APPROVED = "APPROVED"
# What a status webhook's ``event`` makes of the template's status. Most events are
# the status itself; a flagged template (negative feedback, at risk) is still approved,
# and locking (no edits) or the account's template limit change nothing about sending;
# a template reinstated or unarchived can be sent again.
_STATUSES = frozenset(
    {
        "APPROVED",
        "ARCHIVED",
        "DELETED",
        "DISABLED",
        "IN_APPEAL",
        "PAUSED",
        "PENDING",
        "PENDING_DELETION",
        "REJECTED",
    }
)
_UNCHANGED = frozenset({"FLAGGED", "LOCKED", "UNLOCKED", "LIMIT_EXCEEDED"})
_BECOMES = {"REINSTATED": APPROVED, "UNARCHIVED": APPROVED}


@dataclass(frozen=True)
class SyncResult:
    channel_id: int
    templates: int
    added: int
    removed: int


async def sync_channel(
    db: Database,
    secrets: ChannelSecrets,
    http: httpx.AsyncClient,
    base_url: str,
    channel: Channel,
) -> SyncResult:
    """Read the channel's templates from the platform and store them as listed.
    Raises TemplateListError when the platform cannot be read; nothing changes then."""
    assert channel.id is not None
    listed = await fetch_templates(http, base_url, secrets.open(channel))
    # The last entry wins if the platform lists one twice.
    by_key = {(t.name, t.language): t for t in listed}
    now = utcnow()
    async with db.session(write=True) as session:
        stored = {
            (row.name, row.language): row
            for row in await session.exec(
                select(MessageTemplate).where(col(MessageTemplate.channel_id) == channel.id)
            )
        }
        for key, template in by_key.items():
            row = stored.get(key) or MessageTemplate(
                organization_id=channel.organization_id,
                channel_id=channel.id,
                name=template.name,
                language=template.language,
                status=template.status,
            )
            row.external_id = template.external_id
            row.status = template.status
            row.category = template.category
            row.components = template.components
            row.parameters = requirements(template.components)
            row.updated_at = now
            session.add(row)
        gone = [key for key in stored if key not in by_key]
        if gone:
            await session.exec(
                delete(MessageTemplate).where(
                    col(MessageTemplate.channel_id) == channel.id,
                    tuple_(col(MessageTemplate.name), col(MessageTemplate.language)).in_(gone),
                )
            )
        await session.commit()
    added = sum(1 for key in by_key if key not in stored)
    return SyncResult(channel.id, len(by_key), added, len(gone))


async def set_status(
    session: AsyncSession, channel_id: int, value: dict[str, Any]
) -> MessageTemplate | None:
    """Apply a ``message_template_status_update`` to the template it names (by the
    platform's id, else by name and language); None when it was never synced, or when
    the event is not one understood here (`needs_sync` says so then)."""
    event = str(value.get("event") or "").upper()
    if not _understood(event):
        return None
    row = await _named(session, channel_id, value, lock=True)
    if row is None:
        return None
    if event not in _UNCHANGED:
        row.status = _BECOMES.get(event, event)
        row.updated_at = utcnow()
        session.add(row)
        await session.flush()
    return row


async def needs_sync(session: AsyncSession, channel_id: int, value: dict[str, Any]) -> bool:
    """Whether a status webhook tells of something only the platform's list can say: a
    template never synced, or an event not understood here."""
    event = str(value.get("event") or "").upper()
    if not event:
        return False
    if not _understood(event):
        return True
    return await _named(session, channel_id, value, lock=False) is None


def _understood(event: str) -> bool:
    return event in _STATUSES or event in _UNCHANGED or event in _BECOMES


async def _named(
    session: AsyncSession, channel_id: int, value: dict[str, Any], *, lock: bool
) -> MessageTemplate | None:
    external_id = value.get("message_template_id")
    name = value.get("message_template_name")
    language = value.get("message_template_language")
    stmt = select(MessageTemplate).where(col(MessageTemplate.channel_id) == channel_id)
    if external_id is not None:
        stmt = stmt.where(col(MessageTemplate.external_id) == str(external_id))
    elif isinstance(name, str) and isinstance(language, str):
        stmt = stmt.where(
            col(MessageTemplate.name) == name, col(MessageTemplate.language) == language
        )
    else:
        return None
    return (await session.exec(stmt.with_for_update() if lock else stmt)).first()


def _template_of(row: MessageTemplate) -> Template:
    return Template(
        external_id=row.external_id,
        name=row.name,
        language=row.language,
        status=row.status,
        category=row.category,
        components=row.components,
    )


async def fill_template(
    session: AsyncSession, channel: Channel, request: dict[str, Any]
) -> FilledTemplate:
    """The synced template a message asks for, filled with its parameters; 422 naming
    the problem when it is unknown, not approved, or the parameters do not fit."""
    if channel.kind != "whatsapp":
        raise field_error(
            "template", f"templates are sent on WhatsApp channels, not {channel.kind}"
        )
    name, language = request["name"], request["language"]
    row = (
        await session.exec(
            select(MessageTemplate).where(
                col(MessageTemplate.channel_id) == channel.id,
                col(MessageTemplate.name) == name,
                col(MessageTemplate.language) == language,
            )
        )
    ).first()
    if row is None:
        raise field_error(
            "template.name",
            f"no template {name!r} in language {language!r} on this channel "
            "(templates are read from the platform by `inbox channels sync-templates`)",
        )
    if row.status != APPROVED:
        raise field_error(
            "template.name",
            f"template {name!r} ({language}) is {row.status}; only APPROVED templates can be sent",
        )
    parameters = request.get("parameters") or {}
    try:
        return fill(
            _template_of(row),
            body=parameters.get("body") or [],
            header=parameters.get("header") or [],
            buttons=parameters.get("buttons") or [],
        )
    except TemplateError as exc:
        raise field_error(f"template.{exc.field}", f"{exc.message} (template {name!r})") from None
