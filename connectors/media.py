"""Reading an attachment's bytes from the platform that holds it.

WhatsApp names media by id: the Graph API answers the id with a short-lived URL,
read with the channel's token. Instagram gives a CDN URL that needs no credentials.
Twilio's ``MediaUrl`` is read with the account's SID and auth token (it redirects to
storage elsewhere, where the credentials are not sent). Nothing is read past
``max_bytes``.

Those URLs come in webhooks (and, for WhatsApp, from the Graph API), so they are read
with ``remote``: a client of `safe_urls.guarded_client`, which never connects to the
service's own network unless an operator allows it. Redirects are followed here, a
few at most, each one through that client and so checked again."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from . import meta
from .errors import PlatformCallError
from .safe_urls import Unresolvable, UnsafeUrl
from .sending import json_body, refusal, transport_errors
from .settings import ChannelSettings, InstagramSettings, SmsSettings, WhatsAppSettings

__all__ = ["FetchedMedia", "MediaFetchError", "fetch_media"]

# Statuses after which the same read may succeed later.
_RETRYABLE = frozenset({408, 425, 429, 500, 502, 503, 504})
# Twilio's media URL answers with one redirect to its storage.
MAX_REDIRECTS = 5


class MediaFetchError(PlatformCallError):
    """An attachment could not be read from its platform; ``code`` ``too_large`` when
    it is over the limit, ``unsupported`` when the channel cannot say where it is."""


@dataclass(frozen=True)
class FetchedMedia:
    data: bytes
    # What the platform says it is: a hint, the bytes say what it is.
    content_type: str | None


async def fetch_media(
    client: httpx.AsyncClient,
    base_url: str,
    settings: ChannelSettings,
    reference: str,
    *,
    max_bytes: int,
    remote: httpx.AsyncClient,
) -> FetchedMedia:
    """The bytes of the attachment ``reference`` names (a WhatsApp media id, or a URL).
    ``client`` calls the Graph API at ``base_url``; ``remote`` reads the URLs the
    platforms name (it must follow no redirects itself)."""
    if isinstance(settings, WhatsAppSettings):
        token = settings.access_token.get_secret_value()
        headers = {"Authorization": f"Bearer {token}"}
        url = f"{base_url.rstrip('/')}/{reference}"
        with transport_errors(url, MediaFetchError):
            answer = await client.get(url, headers=headers)
        if not answer.is_success:
            raise refusal(
                MediaFetchError, url, answer, meta.read_graph_error, _RETRYABLE.__contains__
            )
        info = json_body(answer)
        _check_declared(info.get("file_size"), max_bytes)
        location = info.get("url")
        if not isinstance(location, str) or not location.startswith(("http://", "https://")):
            raise MediaFetchError(
                "the Graph API named no URL for the media", retryable=False, code="bad_response"
            )
        return await _download(remote, location, max_bytes, headers=headers)
    if isinstance(settings, InstagramSettings):
        return await _download(remote, _url(reference), max_bytes)
    if isinstance(settings, SmsSettings):
        auth = httpx.BasicAuth(settings.account_sid, settings.auth_token.get_secret_value())
        return await _download(remote, _url(reference), max_bytes, auth=auth)
    raise MediaFetchError(
        "this channel holds no media to fetch", retryable=False, code="unsupported"
    )


def _url(reference: str) -> str:
    if not reference.startswith(("http://", "https://")):
        raise MediaFetchError("the media has no URL", retryable=False, code="unsupported")
    return reference


def _check_declared(size: Any, max_bytes: int) -> None:
    if isinstance(size, int) and size > max_bytes:
        raise MediaFetchError(
            f"the media is {size} bytes, over the limit of {max_bytes}",
            retryable=False,
            code="too_large",
        )


async def _download(
    client: httpx.AsyncClient,
    url: str,
    max_bytes: int,
    *,
    headers: dict[str, str] | None = None,
    auth: httpx.Auth | None = None,
) -> FetchedMedia:
    request = client.build_request("GET", url, headers=headers)
    send_auth: httpx.Auth | None = auth
    for _ in range(MAX_REDIRECTS + 1):
        with _guarded(str(request.url)), transport_errors(str(request.url), MediaFetchError):
            response = await client.send(
                request,
                auth=send_auth if send_auth is not None else httpx.USE_CLIENT_DEFAULT,
                follow_redirects=False,
                stream=True,
            )
            try:
                if response.next_request is None:
                    return await _body(response, str(request.url), max_bytes)
            finally:
                await response.aclose()
        # httpx drops the Authorization header when the redirect leaves the origin;
        # the credentials themselves are never given again.
        request, send_auth = response.next_request, None
    raise MediaFetchError(
        f"more than {MAX_REDIRECTS} redirects from {url}", retryable=False, code="redirects"
    )


@contextmanager
def _guarded(url: str) -> Iterator[None]:
    try:
        yield
    except Unresolvable as exc:
        raise MediaFetchError(f"{url}: {exc}", retryable=True, code="connect_error") from None
    except UnsafeUrl as exc:
        raise MediaFetchError(
            f"the media URL is not allowed: {exc}", retryable=False, code="unsafe_url"
        ) from None


async def _body(response: httpx.Response, url: str, max_bytes: int) -> FetchedMedia:
    if not response.is_success:
        await response.aread()
        raise refusal(MediaFetchError, url, response, _no_error_body, _RETRYABLE.__contains__)
    length = response.headers.get("content-length", "")
    _check_declared(int(length) if length.isdigit() else None, max_bytes)
    chunks: list[bytes] = []
    received = 0
    async for chunk in response.aiter_bytes():
        received += len(chunk)
        # Stopped as soon as it is over: the rest is never read.
        _check_declared(received, max_bytes)
        chunks.append(chunk)
    return FetchedMedia(b"".join(chunks), response.headers.get("content-type"))


def _no_error_body(_response: httpx.Response) -> tuple[str | None, str | None, bool]:
    return None, None, False
