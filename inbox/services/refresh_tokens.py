"""Refresh tokens: an API client's session lasts a shift, and longer, without its password.

Each login starts a family; each refresh spends the token it was given and hands out
the next one of the family. The token holds 256 random bits; the database holds their
SHA-256. A spent token presented again means two holders: the family ends, every token
of it and every access token issued with it (they name it), and its sockets close.
Two refreshes racing with one token count alike: the first to mark it spent wins, the
other is a reuse, and the family ends (a client refreshes one request at a time).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Select, bindparam, delete, insert, or_, select, update
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from ..db import Database
from ..errors import AuthenticationFailed
from ..models import RefreshFamily, RefreshToken, User

PREFIX = "ibr_"
# Why a family ended, as stored and as the refusal explains it.
LOGOUT = "logout"
REUSE = "reuse"
SESSIONS_ENDED = "sessions_ended"
# Ended and lapsed families are deleted this long after, with their tokens: a client
# asking why its token stopped still hears "reused" or "signed out" for a while.
PRUNE_AFTER = timedelta(days=1)

UNKNOWN = "Invalid refresh token: it is not one this service issued; sign in again"
LAPSED = (
    "Refresh token expired: it was not used in time (INBOX_REFRESH_TTL); sign in again"
)
REUSED = (
    "Refresh token reused: it was spent by an earlier refresh, so its session has ended "
    "everywhere (the newest refresh token and its access tokens too); sign in again"
)
FAMILY_EXPIRED = (
    "Session expired: it reached its maximum age (INBOX_REFRESH_MAX); sign in again"
)
INACTIVE_USER = "Refresh token revoked: its user is no longer active"
ENDED = {
    LOGOUT: "Session ended: it was signed out (POST /api/auth/logout); sign in again",
    REUSE: "Session ended: one of its refresh tokens was used twice; sign in again",
    SESSIONS_ENDED: (
        "Session ended with every session of its user (sign-out everywhere, a password "
        "change or reset, a deactivation); sign in again"
    ),
}


def authentication_failed(reason: str, message: str) -> AuthenticationFailed:
    # As auth.authentication_failed says it; auth builds on this module, not the reverse.
    return AuthenticationFailed(message, {"reason": reason})


def ended_family(reason: str | None) -> AuthenticationFailed:
    return authentication_failed("revoked", ENDED.get(reason or "", ENDED[SESSIONS_ENDED]))


class Reused(AuthenticationFailed):
    """A spent refresh token came back: its family was ended (committed) just now."""

    def __init__(self, organization_id: int, user_id: int, family_id: int) -> None:
        super().__init__(REUSED, {"reason": "reused"})
        self.organization_id = organization_id
        self.user_id = user_id
        self.family_id = family_id


@dataclass(frozen=True)
class Issued:
    """A refresh token handed out (never stored), and the session it belongs to."""

    user: User
    family_id: int
    token: str
    expires_at: datetime
    # The family's absolute limit: nothing issued with it outlives this.
    family_expires_at: datetime


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _new_token() -> tuple[str, str]:
    token = PREFIX + secrets.token_urlsafe(32)
    return token, digest(token)


async def start_family(db: Database, user: User, *, ttl: int, max_seconds: int) -> Issued:
    """A new session of the user (a login) and its first refresh token."""
    assert user.id is not None
    token, token_hash = _new_token()
    now = datetime.now(UTC)
    family = RefreshFamily(
        organization_id=user.organization_id,
        user_id=user.id,
        created_at=now,
        expires_at=now + timedelta(seconds=max_seconds),
    )
    async with db.session(write=True) as session:
        session.add(family)
        await session.flush()
        assert family.id is not None
        expires_at = min(now + timedelta(seconds=ttl), family.expires_at)
        connection = await session.connection()
        await connection.execute(
            insert(RefreshToken).values(
                organization_id=user.organization_id,
                family_id=family.id,
                token_hash=token_hash,
                created_at=now,
                expires_at=expires_at,
            )
        )
        await session.commit()
    return Issued(user, family.id, token, expires_at, family.expires_at)


async def rotate(db: Database, token: str, *, ttl: int) -> Issued:
    """Spend ``token`` and hand out the next of its family; AuthenticationFailed when it
    is unknown, expired, or its family or user no longer stands; ``Reused`` (after ending
    the family) when it was spent before."""
    now = datetime.now(UTC)
    async with db.session(write=True) as session:
        connection = await session.connection()
        row = (await connection.execute(_READ, {"digest": digest(token)})).first()
        if row is None:
            raise authentication_failed("invalid", UNKNOWN)
        if row.ended_at is not None:
            raise ended_family(row.end_reason)
        if not row.is_active or row.user_organization_id != row.organization_id:
            raise authentication_failed("revoked", INACTIVE_USER)
        if row.family_expires_at <= now:
            raise authentication_failed("expired", FAMILY_EXPIRED)
        if row.expires_at <= now:
            raise authentication_failed("expired", LAPSED)
        # The one statement that decides a race: only one refresh finds it unspent.
        spent = await connection.execute(_SPEND, {"token_id": row.id, "now": now})
        if row.used_at is not None or spent.rowcount != 1:
            await end_family(session, row.family_id, REUSE)
            await session.commit()
            raise Reused(row.organization_id, row.user_id, row.family_id)
        next_token, token_hash = _new_token()
        expires_at = min(now + timedelta(seconds=ttl), row.family_expires_at)
        await connection.execute(
            insert(RefreshToken).values(
                organization_id=row.organization_id,
                family_id=row.family_id,
                token_hash=token_hash,
                created_at=now,
                expires_at=expires_at,
            )
        )
        user = await session.get(User, row.user_id)
        await session.commit()
    assert user is not None
    return Issued(user, row.family_id, next_token, expires_at, row.family_expires_at)


async def end_family(session: AsyncSession, family_id: int, reason: str) -> bool:
    """End the family in the caller's transaction; False when it had ended already."""
    connection = await session.connection()
    params = {"family_id": family_id, "now": datetime.now(UTC), "reason": reason}
    ended = await connection.execute(_END_ONE, params)
    return bool(ended.rowcount)


async def sign_out(db: Database, family_id: int) -> None:
    async with db.session(write=True) as session:
        await end_family(session, family_id, LOGOUT)
        await session.commit()


async def end_user_families(
    session: AsyncSession, user_id: int, *, keep: int | None = None
) -> None:
    """End, in the caller's transaction, every refresh family of the user but ``keep``."""
    statement = (
        update(RefreshFamily)
        .where(col(RefreshFamily.user_id) == user_id, col(RefreshFamily.ended_at).is_(None))
        .values(ended_at=datetime.now(UTC), end_reason=SESSIONS_ENDED)
    )
    if keep is not None:
        statement = statement.where(col(RefreshFamily.id) != keep)
    connection = await session.connection()
    await connection.execute(statement)


def check_standing(
    ended_at: datetime | None, end_reason: str | None, expires_at: datetime
) -> datetime:
    """A family's absolute limit while it stands; AuthenticationFailed once it ended or
    reached that limit."""
    if ended_at is not None:
        raise ended_family(end_reason)
    if expires_at <= datetime.now(UTC):
        raise authentication_failed("expired", FAMILY_EXPIRED)
    return expires_at


async def family_lasts_until(db: Database, family_id: int, organization_id: int) -> datetime:
    """The absolute limit of a family that stands; AuthenticationFailed otherwise."""
    async with db.engine.connect() as connection:
        row = (await connection.execute(STANDING, {"family_id": family_id})).first()
    if row is None or row.organization_id != organization_id:
        raise ended_family(None)
    return check_standing(row.ended_at, row.end_reason, row.expires_at)


async def prune(db: Database) -> int:
    """Delete the families ended or lapsed over a day ago (their tokens go with them), and
    the lapsed tokens of the others; answer how many rows went."""
    before = datetime.now(UTC) - PRUNE_AFTER
    async with db.session(write=True) as session:
        connection = await session.connection()
        tokens = await connection.execute(_PRUNE_TOKENS, {"before": before})
        families = await connection.execute(_PRUNE_FAMILIES, {"before": before})
        await session.commit()
    return int(tokens.rowcount or 0) + int(families.rowcount or 0)


# Built once: the first two run for every refresh, STANDING for every access token of a
# family and every socket it opens.
_READ: Select[*tuple[Any, ...]] = (
    select(
        col(RefreshToken.id),
        col(RefreshToken.organization_id),
        col(RefreshToken.family_id),
        col(RefreshToken.expires_at),
        col(RefreshToken.used_at),
        col(RefreshFamily.user_id),
        col(RefreshFamily.expires_at).label("family_expires_at"),
        col(RefreshFamily.ended_at),
        col(RefreshFamily.end_reason),
        col(User.is_active),
        col(User.organization_id).label("user_organization_id"),
    )
    .join(RefreshFamily, col(RefreshFamily.id) == col(RefreshToken.family_id))
    .join(User, col(User.id) == col(RefreshFamily.user_id))
    .where(col(RefreshToken.token_hash) == bindparam("digest"))
)
_SPEND = (
    update(RefreshToken)
    .where(col(RefreshToken.id) == bindparam("token_id"), col(RefreshToken.used_at).is_(None))
    .values(used_at=bindparam("now"))
)
_END_ONE = (
    update(RefreshFamily)
    .where(col(RefreshFamily.id) == bindparam("family_id"), col(RefreshFamily.ended_at).is_(None))
    .values(ended_at=bindparam("now"), end_reason=bindparam("reason"))
)
STANDING = select(
    col(RefreshFamily.organization_id),
    col(RefreshFamily.ended_at),
    col(RefreshFamily.end_reason),
    col(RefreshFamily.expires_at),
).where(col(RefreshFamily.id) == bindparam("family_id"))
_PRUNE_TOKENS = delete(RefreshToken).where(col(RefreshToken.expires_at) < bindparam("before"))
_PRUNE_FAMILIES = delete(RefreshFamily).where(
    or_(
        col(RefreshFamily.ended_at) < bindparam("before"),
        col(RefreshFamily.expires_at) < bindparam("before"),
    )
)
