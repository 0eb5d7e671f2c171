"""The one exception the client raises for anything the service refuses."""

from __future__ import annotations

import json
from typing import Any

import httpx


class InboxError(Exception):
    """The service's error envelope: ``code`` (e.g. ``RESOURCE_NOT_FOUND``), ``message``,
    ``details``, the HTTP ``status`` (None for errors met on the event stream) and, on 429
    or 503, ``retry_after`` in seconds."""

    def __init__(
        self,
        status: int | None,
        code: str,
        message: str,
        details: dict[str, Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}" if status is None else f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}
        self.retry_after = retry_after

    @classmethod
    def from_response(cls, response: httpx.Response) -> InboxError:
        return cls.from_body(response.status_code, response.content, response.headers)

    @classmethod
    def from_body(cls, status: int, body: bytes, headers: Any = None) -> InboxError:
        code, message, details = _envelope(status, body)
        retry_after = _seconds(headers.get("retry-after")) if headers is not None else None
        return cls(status, code, message, details, retry_after)


class ReplayTruncated(InboxError):
    """The position asked to resume from is older than what the service keeps: events
    were missed. Reload what matters through REST, then stream again from now
    (``events()`` without ``last_event_id``)."""

    def __init__(self, last_event_id: int | None) -> None:
        super().__init__(
            None,
            "REPLAY_TRUNCATED",
            f"events after {last_event_id} are no longer kept; reload through REST",
        )
        self.last_event_id = last_event_id


def _envelope(status: int, body: bytes) -> tuple[str, str, dict[str, Any]]:
    try:
        error = json.loads(body)["error"]
        code, message = error["code"], error["message"]
        details = error.get("details") or {}
        if isinstance(code, str) and isinstance(message, str) and isinstance(details, dict):
            return code, message, details
    except (ValueError, KeyError, TypeError):
        pass
    # Not the service's envelope: a proxy's page, or an empty body.
    text = body[:200].decode("utf-8", "replace").strip()
    return f"HTTP_{status}", text or httpx.codes.get_reason_phrase(status), {}


def _seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
