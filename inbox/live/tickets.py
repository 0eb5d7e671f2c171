"""Short-lived, single-use WebSocket tickets, so browsers never put a token in a URL.

A ticket is a signed token naming its holder, the epoch of the session it came from and
when the credential it was minted from lapses. Single use is recorded in the database
(``used_tickets``), which every process reaches and which the handshake reads anyway:
Redis going away cannot break ticket handshakes.
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from sqlalchemy import bindparam, delete, insert
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlmodel import col

from ..auth import Principal, authentication_failed
from ..db import Database
from ..errors import AuthenticationFailed, ServiceUnavailable
from ..models.organizations import UsedTicket
from ..security import JWT_ALGORITHM
from ..services import console_sessions, refresh_tokens

log = logging.getLogger("inbox.live")

TICKET_TTL_SECONDS = 30
_AUDIENCE = "inbox:ws"
# A used ticket's row outlives the ticket by this much, so a process whose clock runs
# behind cannot take it for unused once the row is gone.
USED_TICKET_GRACE = timedelta(seconds=60)
PRUNE_USED_EVERY_SECONDS = 60.0

INVALID_TICKET = "Invalid ticket"
EXPIRED_TICKET = "Ticket expired: ask for a new one right before connecting"
# Said apart from unknown: a page that opens two sockets with one ticket learns why.
USED_TICKET = "Invalid ticket: it was used already, and a ticket opens one connection"
REVOKED_TICKET = "Ticket revoked: the user or API key it was issued to is no longer active"
CREDENTIAL_EXPIRED_TICKET = (
    "Ticket expired: the access token or API key it was issued for has expired"
)
TICKETS_UNAVAILABLE = (
    "Tickets cannot be checked now: the database does not answer; try again shortly"
)


@dataclass(frozen=True)
class TicketClaims:
    ticket_id: str
    organization_id: int
    expires_at: datetime
    user_id: int | None
    api_key_id: int | None
    # The user's session epoch when the ticket was minted (0 for tickets that carry none).
    session_epoch: int
    # When the access token or API key it was minted from lapses; None: never.
    credential_expires_at: datetime | None
    # The console session it was minted from, if any: the socket closes when it ends.
    session_id: int | None = None
    # The refresh family (an API client's session) it was minted in, if any: likewise.
    family_id: int | None = None


class UsedTickets:
    """The tickets that opened a connection, in the database until they expire."""

    def __init__(self, db: Database, *, session_idle: int | None = None) -> None:
        self.db = db
        # With it, the prune also deletes console sessions long over (their idle timeout
        # tells which lapsed unused).
        self.session_idle = session_idle
        self._pruned_at = time.monotonic()

    async def first_use(self, ticket_id: str, expires_at: datetime) -> bool:
        """Record the ticket's use: False when it was used already; ServiceUnavailable
        when the database cannot say."""
        try:
            async with self.db.session(write=True) as session:
                connection = await session.connection()
                params = {"id": ticket_id, "expires_at": expires_at + USED_TICKET_GRACE}
                await connection.execute(_RECORD_USE, params)
                await session.commit()
        except IntegrityError:
            return False
        except (SQLAlchemyError, OSError, TimeoutError) as exc:
            raise ServiceUnavailable(TICKETS_UNAVAILABLE) from exc
        if time.monotonic() - self._pruned_at > PRUNE_USED_EVERY_SECONDS:
            self._pruned_at = time.monotonic()
            try:
                await self.prune()
            except (SQLAlchemyError, OSError, TimeoutError):
                # The ticket is recorded; the rows wait for the next prune.
                log.warning("pruning used tickets failed", exc_info=True)
        return True

    async def prune(self) -> int:
        """Forget the tickets that can no longer be presented; answer how many."""
        async with self.db.session(write=True) as session:
            connection = await session.connection()
            result = await connection.execute(_PRUNE, {"now": datetime.now(UTC)})
            await session.commit()
        if self.session_idle is not None:
            # Sessions end far less often than tickets are used: this piggy-backs on the
            # tickets' minute rather than run a task of its own.
            await console_sessions.prune(self.db, self.session_idle)
            await refresh_tokens.prune(self.db)
        return int(getattr(result, "rowcount", 0) or 0)


# Built once: one runs for every ticket redeemed.
_RECORD_USE = insert(UsedTicket).values(id=bindparam("id"), expires_at=bindparam("expires_at"))
_PRUNE = delete(UsedTicket).where(col(UsedTicket.expires_at) < bindparam("now"))


def issue_ticket(key: str, principal: Principal) -> tuple[str, int]:
    """(a ticket for ``principal``, its lifetime in seconds): never past the credential's."""
    now = datetime.now(UTC)
    expires_at = now + timedelta(seconds=TICKET_TTL_SECONDS)
    claims: dict[str, Any] = {
        "aud": _AUDIENCE,
        "jti": secrets.token_urlsafe(12),
        "org": principal.organization_id,
        "iat": now,
    }
    if principal.expires_at is not None:
        claims["cexp"] = int(principal.expires_at.timestamp())
        expires_at = min(expires_at, principal.expires_at)
    claims["exp"] = expires_at
    if principal.user_id is not None:
        claims["sub"] = str(principal.user_id)
        claims["epoch"] = principal.session_epoch or 0
        if principal.session_id is not None:
            claims["sid"] = principal.session_id
        if principal.family_id is not None:
            claims["fam"] = principal.family_id
    if principal.api_key_id is not None:
        claims["key"] = principal.api_key_id
    lifetime = max(1, round((expires_at - now).total_seconds()))
    return jwt.encode(claims, key, algorithm=JWT_ALGORITHM), lifetime


def read_ticket(key: str, ticket: str) -> TicketClaims:
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
    try:
        credential_expiry = claims.get("cexp")
        return TicketClaims(
            ticket_id=_text(claims["jti"]),
            organization_id=_integer(claims["org"]),
            expires_at=_moment(claims["exp"]),
            user_id=_user_id(claims["sub"]) if "sub" in claims else None,
            api_key_id=_integer(claims["key"]) if "key" in claims else None,
            session_epoch=_integer(claims.get("epoch", 0)),
            credential_expires_at=(
                None if credential_expiry is None else _moment(credential_expiry)
            ),
            session_id=_integer(claims["sid"]) if "sid" in claims else None,
            family_id=_integer(claims["fam"]) if "fam" in claims else None,
        )
    except (KeyError, TypeError, ValueError, OverflowError, OSError):
        raise authentication_failed("invalid", INVALID_TICKET) from None


def _integer(value: object) -> int:
    if type(value) is not int:
        raise TypeError("not an integer")
    return value


def _user_id(value: object) -> int:
    if not isinstance(value, str) or not value.isdigit() or len(value) > 10:
        raise ValueError("not a user id")
    return int(value)


def _moment(value: object) -> datetime:
    # A bool is an int to isinstance, and no NumericDate.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError("not a NumericDate")
    return datetime.fromtimestamp(value, UTC)


def _text(value: object) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= 32:
        raise ValueError("not a ticket id")
    return value


def used_ticket() -> AuthenticationFailed:
    return authentication_failed("invalid", USED_TICKET)


def revoked_ticket() -> AuthenticationFailed:
    return authentication_failed("revoked", REVOKED_TICKET)


def credential_expired_ticket() -> AuthenticationFailed:
    return authentication_failed("expired", CREDENTIAL_EXPIRED_TICKET)
