"""Attachments that arrive with a customer's message: each one the platform holds is
given a media row, pending, in the message's own transaction; the fetch worker reads
its bytes after the webhook has been answered."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from ..models import Media, table_of, utcnow
from .upload import clean_filename

# The longest media type kept (the column's width); a longer one is no type anyone sends.
_MAX_TYPE_LENGTH = 255

# Attachment types whose bytes a platform keeps for us to read, and the key naming them.
_FETCHED = {
    "whatsapp": ("media_id", frozenset({"image", "video", "audio", "document", "sticker"})),
    "instagram": ("url", frozenset({"image", "video", "audio", "document"})),
    "sms": ("url", frozenset({"image", "video", "audio", "document"})),
}


def new_media_id() -> str:
    return secrets.token_urlsafe(16)


def media_slots(platform: str, attachments: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The attachments, each one to be fetched given ``media``: its id here, pending."""
    key, kinds = _FETCHED.get(platform, ("", frozenset()))
    for attachment in attachments:
        if attachment.get("type") in kinds and isinstance(attachment.get(key), str):
            attachment["media"] = {"id": new_media_id(), "status": "pending"}
    return attachments


async def record_inbound_media(
    connection: AsyncConnection, stored: Sequence[dict[str, Any]]
) -> None:
    """A pending media row for every attachment of ``stored`` that was given a slot."""
    now = utcnow()
    rows: list[dict[str, Any]] = []
    for message in stored:
        if message["direction"] != "inbound":
            continue
        for index, attachment in enumerate(message["attachments"] or ()):
            media = attachment.get("media")
            if not isinstance(media, dict) or "id" not in media:
                continue
            reference = attachment.get("media_id") or attachment.get("url")
            rows.append(
                {
                    "id": media["id"],
                    "organization_id": message["organization_id"],
                    "message_id": message["id"],
                    "attachment_index": index,
                    "channel_id": message["channel_id"],
                    "source": "inbound",
                    "platform_ref": reference,
                    "content_type": _declared_type(attachment.get("mime_type")),
                    "size": None,
                    "sha256": None,
                    "storage_key": None,
                    "filename": _filename(attachment.get("filename")),
                    "status": "pending",
                    "error": None,
                    "attempts": 0,
                    "next_attempt_at": now,
                    "claimed_at": None,
                    "created_at": now,
                    "updated_at": now,
                }
            )
    if rows:
        await connection.execute(insert(table_of(Media)), rows)


# What the platform says of a file goes into bounded columns in the message's own
# transaction: a value too long must not fail the message's arrival.
def _declared_type(value: Any) -> str | None:
    if not isinstance(value, str) or len(value) > _MAX_TYPE_LENGTH:
        return None
    return value.strip() or None


def _filename(value: Any) -> str | None:
    return clean_filename(value) if isinstance(value, str) else None
