"""Instagram's User Profile API: who an Instagram-scoped id (IGSID) is.

A messaging webhook names its sender by IGSID only. The profile is read with
``GET {graph}/{IGSID}?fields=name,username,profile_pic`` and the token of the
professional account the person wrote to; the platform answers only for people
who have messaged that account (their consent), and not for one who blocked it.
``name`` and ``profile_pic`` may each be missing or null; ``profile_pic`` is a
URL that expires within days, so it is worth showing, not keeping.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from . import meta, sending
from .errors import PlatformCallError
from .settings import ChannelSettings, InstagramSettings, expect

__all__ = ["FIELDS", "Profile", "ProfileError", "fetch_profile"]

FIELDS = "name,username,profile_pic"

# Statuses after which the same read may succeed later: a timeout, a rate limit, the
# platform failing. Any other 4xx says something about the request or the person.
_RETRYABLE_STATUSES = frozenset({408, 425, 429})


@dataclass(frozen=True)
class Profile:
    """What the platform tells of a person; any part may be unknown (None)."""

    name: str | None
    username: str | None
    profile_pic: str | None = None


class ProfileError(PlatformCallError):
    """A profile could not be read.

    ``retryable`` says whether asking again later could succeed (timeouts, rate
    limits, server errors); ``retry_after`` is the delay the platform asked for, in
    seconds, when it gave one. ``code`` is the Graph error code when one was sent,
    else ``"connect_error"``, ``"timeout"``, ``"http_<status>"`` or
    ``"bad_response"`` (a success the body of which is not a profile).
    """


async def fetch_profile(
    client: httpx.AsyncClient, base_url: str, settings: ChannelSettings, user_id: str
) -> Profile:
    """The profile of ``user_id`` (an IGSID) as the channel's account sees it.

    Timeouts belong to ``client``. Raises ProfileError; settings of another kind
    are a TypeError.
    """
    settings = expect(InstagramSettings, settings)
    if not user_id:
        raise ProfileError("no user id to look up", retryable=False, code="bad_request")
    # Quoted whole: an id is one path segment, whatever it holds.
    url = f"{base_url.rstrip('/')}/{quote(user_id, safe='')}"
    with sending.transport_errors(url, ProfileError):
        response = await client.get(
            url,
            params={"fields": FIELDS},
            # In a header rather than ?access_token=: URLs end up in logs.
            headers={"Authorization": f"Bearer {settings.access_token.get_secret_value()}"},
        )
    if response.is_success:
        return _profile(response)
    raise sending.refusal(ProfileError, url, response, meta.read_graph_error, _retryable)


def _retryable(status: int) -> bool:
    return status in _RETRYABLE_STATUSES or status >= 500


def _profile(response: httpx.Response) -> Profile:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise ProfileError(
            f"{_host(str(response.url))} answered {response.status_code} without a JSON object",
            retryable=False,
            code="bad_response",
            status_code=response.status_code,
        )
    return Profile(
        name=_text(body, "name"),
        username=_text(body, "username"),
        profile_pic=_text(body, "profile_pic"),
    )


def _text(body: dict[str, Any], key: str) -> str | None:
    # A field the person left unset comes as null, or not at all.
    value = body.get(key)
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return None


def _host(url: str) -> str:
    return httpx.URL(url).host or url
