"""One webhook request on its way to the archive."""

from __future__ import annotations

from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ...models import utcnow
from ..arrival import IngestResult

# Credentials, never kept. Signature headers are: they prove nothing without the body
# they sign, and a replay checks them again.
_SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "x-api-key", "x-form-key", "cookie", "set-cookie"}
)


def kept_headers(pairs: Iterable[tuple[str, str]]) -> list[list[str]]:
    return [[name, value] for name, value in pairs if name.lower() not in _SECRET_HEADERS]


@dataclass(eq=False, slots=True)
class Delivery:
    """A request being answered; becomes one `WebhookRecord` row."""

    kind: str
    method: str
    url: str
    headers: list[list[str]]
    body: bytes
    # Who sent it (forged requests are capped by it); not stored.
    client: str
    received_at: datetime
    organization_id: int | None = None
    channel_id: int | None = None
    replay_of: int | None = None
    # What the handler made of it, when it answered without an error.
    outcome: str | None = None
    # Written by the group commit with the data it stored.
    committed: bool = False
    # The id it got, once known (replays ask for it).
    record_id: int | None = None

    def found(self, organization_id: int | None, channel_id: int | None = None) -> None:
        self.organization_id = organization_id
        self.channel_id = channel_id


_current: ContextVar[Delivery | None] = ContextVar("webhook_delivery", default=None)


def started(delivery: Delivery | None) -> None:
    """``delivery`` is the request the current task answers."""
    _current.set(delivery)


def current_delivery() -> Delivery | None:
    """The request being answered, when the archive is on."""
    return _current.get()


def outcome_of(result: IngestResult) -> str:
    if result.stored or result.updated:
        return "stored"
    if result.duplicates:
        return "duplicate"
    return "ignored"


def delivery_row(
    delivery: Delivery, outcome: str, *, status: int = 200, error: str | None = None
) -> dict[str, Any]:
    """The `webhook_log` row of ``delivery``."""
    size = len(delivery.body) + sum(len(k) + len(v) for k, v in delivery.headers)
    return {
        "organization_id": delivery.organization_id,
        "channel_id": delivery.channel_id,
        "kind": delivery.kind,
        "received_at": delivery.received_at,
        "method": delivery.method,
        "url": delivery.url[:2048],
        "headers": delivery.headers,
        "body": delivery.body,
        "size": size,
        "outcome": outcome,
        "status": status,
        "error": error[:500] if error else None,
        "replay_of": delivery.replay_of,
    }


def now() -> datetime:
    return utcnow()
