"""Short-lived signed links to stored media: an ``<img>`` tag or a platform fetching
an agent's attachment sends no credentials, so the link itself says who may read."""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any
from urllib.parse import urlencode

from connectors.errors import SendError

# A console asks for a link as it shows an attachment; a platform fetches an outbound
# one when it sends, sometimes after a retry or two.
CONSOLE_TTL_SECONDS = 3600
PLATFORM_TTL_SECONDS = 24 * 3600


def _digest(key: str, media_id: str, expires: int) -> str:
    message = f"media:{media_id}:{expires}".encode()
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


def signed_path(key: str, media_id: str, ttl: int, now: float | None = None) -> tuple[str, int]:
    """The path that serves ``media_id`` without credentials until it expires, and when
    (Unix seconds)."""
    expires = int((now if now is not None else time.time()) + ttl)
    query = urlencode({"expires": expires, "sig": _digest(key, media_id, expires)})
    return f"/api/media/{media_id}?{query}", expires


def valid(key: str, media_id: str, expires: str, sig: str, now: float | None = None) -> bool:
    """Whether a link's ``expires`` and ``sig`` were made here for this media and still hold."""
    # str.isdigit takes "²" and other digits int() refuses, and compare_digest refuses
    # strings that are not ASCII: a link as written by anyone must answer "not valid".
    if not (expires.isascii() and expires.isdigit()) or len(expires) > 12:
        return False
    if len(sig) != 64 or not all(c in "0123456789abcdef" for c in sig):
        return False
    if int(expires) < (now if now is not None else time.time()):
        return False
    return hmac.compare_digest(_digest(key, media_id, int(expires)), sig)


class MediaLinks:
    """Links to stored media, signed with the service's key; public ones (for the
    platforms to fetch an agent's attachment) need the service's public URL."""

    def __init__(self, key: str, public_url: str | None) -> None:
        self.key = key
        self.public_url = public_url

    def console(self, media_id: str) -> tuple[str, int]:
        return signed_path(self.key, media_id, CONSOLE_TTL_SECONDS)

    def public(self, media_id: str) -> str | None:
        if self.public_url is None:
            return None
        path, _expires = signed_path(self.key, media_id, PLATFORM_TTL_SECONDS)
        return f"{self.public_url}{path}"

    def valid(self, media_id: str, expires: str, sig: str) -> bool:
        return valid(self.key, media_id, expires, sig)


def outbound_attachments(
    attachments: list[dict[str, Any]], links: MediaLinks | None
) -> list[dict[str, Any]]:
    """A reply's attachments as a platform is given them: a stored upload becomes a
    public signed ``url`` the platform fetches."""
    sent: list[dict[str, Any]] = []
    for attachment in attachments:
        media = attachment.get("media")
        if not isinstance(media, dict) or "url" in attachment:
            sent.append(attachment)
            continue
        url = links.public(str(media.get("id"))) if links is not None else None
        if url is None:
            raise SendError(
                "an attachment is sent from the service's public URL: set INBOX_PUBLIC_URL",
                retryable=False,
                code="no_public_url",
            )
        entry = {k: v for k, v in attachment.items() if k != "media"}
        entry["url"] = url
        entry["mime_type"] = media.get("content_type")
        sent.append(entry)
    return sent
