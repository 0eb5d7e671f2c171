"""Media and the messages that carry them: an attachment's ``media`` entry kept in
step with its row, and an agent's uploads turned into a reply's attachments."""

from __future__ import annotations

import copy
from typing import Any

from sqlalchemy import update
from sqlmodel import col, select

from ..db import Database
from ..errors import ValidationFailed
from ..events import EventType
from ..models import Media, Message, utcnow
from ..services.outbox import EventSink, unit_of_work
from ..views import message_data
from .sniff import kind_of


def media_entry(media: Media) -> dict[str, Any]:
    """What a message's attachment says of its stored media."""
    entry: dict[str, Any] = {"id": media.id, "status": media.status}
    if media.status == "stored":
        entry |= {
            "content_type": media.content_type,
            "size": media.size,
            "filename": media.filename,
        }
    elif media.status == "failed":
        entry["error"] = media.error
    return entry


async def record_outcome(
    db: Database, sink: EventSink, media: Media, changes: dict[str, Any]
) -> bool:
    """Write a fetch's outcome on the media row and on its message's attachment, and
    tell the consoles with ``message.updated``; False (nothing written) when the
    claim ``media`` was read with is no longer held (another worker retook it)."""
    now = utcnow()
    async with unit_of_work(db, media.organization_id, sink) as tx:
        claimed = await tx.session.exec(
            update(Media)
            .where(col(Media.id) == media.id, col(Media.claimed_at) == media.claimed_at)
            .values(**changes, claimed_at=None, next_attempt_at=None, updated_at=now)
        )
        if claimed.rowcount != 1:
            return False
        fresh = await tx.session.get(Media, media.id, populate_existing=True)
        if fresh is None or fresh.message_id is None:
            return True
        message = await tx.session.get(
            Message, fresh.message_id, with_for_update=True, populate_existing=True
        )
        index = fresh.attachment_index
        if message is None or index is None or index >= len(message.attachments):
            return True
        attachments = copy.deepcopy(message.attachments)
        attachments[index]["media"] = media_entry(fresh)
        await tx.session.exec(
            update(Message)
            .where(col(Message.id) == message.id)
            .values(attachments=attachments, updated_at=now)
        )
        message = await tx.session.get(Message, message.id, populate_existing=True)
        assert message is not None
        tx.emit(EventType.MESSAGE_UPDATED, message_data(message))
    return True


async def reply_attachments(
    db: Database, org_id: int, requested: list[dict[str, Any]], *, sendable: bool
) -> list[dict[str, Any]]:
    """A reply's attachments as stored: each ``media_id`` an upload of this organization
    that is stored, turned into its type, name and ``media`` entry; a ``url`` as given.

    ``sendable``: whether a platform could fetch an upload (the service has a public
    URL, or the message is a note that is never sent)."""
    ids = [a["media_id"] for a in requested if "media_id" in a]
    if ids and not sendable:
        raise _invalid(
            "attachments",
            "a file is sent from the service's public URL, and INBOX_PUBLIC_URL is not set",
            "no_public_url",
        )
    found: dict[str, Media] = {}
    if ids:
        async with db.session() as session:
            rows = await session.exec(
                select(Media).where(col(Media.id).in_(ids), col(Media.organization_id) == org_id)
            )
            found = {m.id: m for m in rows}
    attachments: list[dict[str, Any]] = []
    for i, asked in enumerate(requested):
        if "media_id" not in asked:
            attachments.append(asked)
            continue
        media = found.get(asked["media_id"])
        if media is None or media.status != "stored" or media.content_type is None:
            raise _invalid(f"attachments.{i}.media_id", "no stored media with this id", "not_found")
        attachment: dict[str, Any] = {
            "type": kind_of(media.content_type),
            "media": media_entry(media),
        }
        if media.filename:
            attachment["filename"] = media.filename
        if asked.get("caption"):
            attachment["caption"] = asked["caption"]
        attachments.append(attachment)
    return attachments


def _invalid(field: str, message: str, kind: str) -> ValidationFailed:
    return ValidationFailed(
        f"{field}: {message}", {"fields": [{"field": field, "message": message, "type": kind}]}
    )
