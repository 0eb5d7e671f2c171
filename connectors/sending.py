"""One outbound HTTP call to a platform API, with transport failures and the
answers that say "try again later" turned into SendError."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import httpx

from .errors import PlatformCallError, SendError

# Statuses after which the same request may succeed later.
_RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})

E = TypeVar("E", bound=PlatformCallError)

# Describes a platform error body: (code, message, retryable) or None when unreadable.
ErrorReader = Callable[[httpx.Response], tuple[str | None, str | None, bool]]


async def post(
    client: httpx.AsyncClient,
    url: str,
    read_error: ErrorReader,
    *,
    json: Mapping[str, Any] | None = None,
    data: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
    auth: httpx.Auth | None = None,
) -> Any:
    """POST and return the decoded JSON body of a 2xx answer, or raise SendError.

    Timeouts belong to ``client``. A timeout is retryable but, unlike a
    connection failure, the platform may already have accepted the message:
    the caller can tell them apart by ``code``.
    """
    with transport_errors(url, SendError):
        response = await client.post(
            url,
            json=json,
            data=data,
            headers=dict(headers or {}),
            auth=auth if auth is not None else httpx.USE_CLIENT_DEFAULT,
        )
    if response.is_success:
        try:
            return response.json()
        except ValueError:
            raise SendError(
                f"{_host(url)} answered {response.status_code} without a JSON body",
                retryable=False,
                code="bad_response",
                status_code=response.status_code,
            ) from None
    raise refusal(SendError, url, response, read_error, _RETRYABLE_STATUSES.__contains__)


@contextmanager
def transport_errors(url: str, error: type[PlatformCallError]) -> Iterator[None]:
    """Turn a failed HTTP exchange with ``url`` into ``error``, retryable; ``code`` says
    whether the platform may have taken the request (``timeout``) or not."""
    try:
        yield
    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
        raise error(
            f"cannot connect to {_host(url)}: {exc!r}", retryable=True, code="connect_error"
        ) from None
    except httpx.TimeoutException as exc:
        raise error(
            f"no answer from {_host(url)} in time: {exc!r}", retryable=True, code="timeout"
        ) from None
    except httpx.HTTPError as exc:
        # The connection broke mid-exchange: the request may have been taken.
        raise error(
            f"request to {_host(url)} failed: {exc!r}", retryable=True, code="timeout"
        ) from None


def refusal(
    error: type[E],
    url: str,
    response: httpx.Response,
    read_error: ErrorReader,
    retryable_status: Callable[[int], bool],
) -> E:
    """The error for a platform's non-2xx answer, from its error body and status."""
    code, message, platform_retryable = read_error(response)
    status = response.status_code
    return error(
        message or f"{_host(url)} answered HTTP {status}",
        retryable=platform_retryable or retryable_status(status),
        code=code or f"http_{status}",
        retry_after=retry_after(response.headers.get("retry-after")),
        status_code=status,
    )


def retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delay or HTTP date)."""
    if not value:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(seconds, 0.0)


def json_body(response: httpx.Response) -> dict[str, Any]:
    """The JSON object of a response, or an empty dict when it has none."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _host(url: str) -> str:
    return httpx.URL(url).host or url
