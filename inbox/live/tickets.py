"""Short-lived, single-use WebSocket tickets, so browsers never put a token in a URL.

A ticket is a signed token naming its holder; single use is enforced by
remembering its id until it expires (in Redis when several processes serve).
"""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import jwt
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from ..auth import authentication_failed
from ..errors import AuthenticationFailed
from ..security import JWT_ALGORITHM

TICKET_TTL_SECONDS = 30
_AUDIENCE = "inbox:ws"

INVALID_TICKET = "Invalid ticket"
EXPIRED_TICKET = "Ticket expired: ask for a new one right before connecting"
# Said apart from unknown: a page that opens two sockets with one ticket learns why.
USED_TICKET = "Invalid ticket: it was used already, and a ticket opens one connection"
REVOKED_TICKET = "Ticket revoked: the user or API key it was issued to is no longer active"


class UsedTickets(Protocol):
    async def first_use(self, ticket_id: str, ttl_seconds: int) -> bool: ...

    async def close(self) -> None: ...


class MemoryUsedTickets:
    def __init__(self) -> None:
        self._seen: dict[str, float] = {}

    async def first_use(self, ticket_id: str, ttl_seconds: int) -> bool:
        now = time.monotonic()
        if len(self._seen) > 10_000:
            self._seen = {k: v for k, v in self._seen.items() if v > now}
        if self._seen.get(ticket_id, 0.0) > now:
            return False
        self._seen[ticket_id] = now + ttl_seconds
        return True

    async def close(self) -> None:
        return None


class RedisUsedTickets:
    def __init__(self, url: str) -> None:
        # One retry on a fresh connection: a pooled one does not survive a Redis restart,
        # and the first browser to connect afterwards would be refused for it.
        self._redis: Redis = Redis.from_url(
            url, socket_timeout=2.0, socket_connect_timeout=2.0, retry=Retry(NoBackoff(), 1)
        )

    async def first_use(self, ticket_id: str, ttl_seconds: int) -> bool:
        return bool(await self._redis.set(f"inbox:ticket:{ticket_id}", 1, nx=True, ex=ttl_seconds))

    async def close(self) -> None:
        await self._redis.aclose()


def issue_ticket(
    key: str, *, organization_id: int, user_id: int | None, api_key_id: int | None
) -> str:
    now = datetime.now(UTC)
    claims: dict[str, Any] = {
        "aud": _AUDIENCE,
        "jti": secrets.token_urlsafe(12),
        "org": organization_id,
        "iat": now,
        "exp": now + timedelta(seconds=TICKET_TTL_SECONDS),
    }
    if user_id is not None:
        claims["sub"] = str(user_id)
    if api_key_id is not None:
        claims["key"] = api_key_id
    return jwt.encode(claims, key, algorithm=JWT_ALGORITHM)


def read_ticket(key: str, ticket: str) -> dict[str, Any]:
    """The claims of a genuine, unexpired ticket; AuthenticationFailed otherwise."""
    try:
        claims: dict[str, Any] = jwt.decode(
            ticket,
            key,
            algorithms=[JWT_ALGORITHM],
            audience=_AUDIENCE,
            options={"require": ["exp", "jti", "org", "aud"]},
        )
    # Raised only once the signature holds: a forged ticket is never called expired.
    except jwt.ExpiredSignatureError:
        raise authentication_failed("expired", EXPIRED_TICKET) from None
    except jwt.PyJWTError:
        raise authentication_failed("invalid", INVALID_TICKET) from None
    return claims


def used_ticket() -> AuthenticationFailed:
    return authentication_failed("invalid", USED_TICKET)


def revoked_ticket() -> AuthenticationFailed:
    return authentication_failed("revoked", REVOKED_TICKET)
