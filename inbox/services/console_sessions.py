"""Console sessions: a browser signed in with a cookie that slides while it is used.

The cookie holds 256 random bits; the database holds their SHA-256. A session stands
while it is not ended, before its absolute limit and within the idle timeout of its
last use. Ending every session of a user goes with the bump of their session epoch
(``accounts.end_sessions``), so everything that signs a user out signs the console out.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from sqlalchemy import bindparam, delete, or_, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from ..db import Database
from ..errors import AuthenticationFailed, AuthorizationFailed
from ..models import ConsoleSession, User

COOKIE = "inbox_session"
CLIENT_HEADER = "x-inbox-client"
CLIENT = "console"

# last_used_at is what the idle limit runs from: written at most this often per session
# (or a quarter of the idle timeout, when that is shorter), not on every request.
TOUCH_INTERVAL = timedelta(seconds=60)
# How long a process trusts a session it has read. Signing out through any process
# reaches the others at once over the broker; this bounds what nothing announces.
SESSION_TTL_SECONDS = 5.0
# Ended and lapsed sessions are deleted this long after: a sign-in page that asks why a
# cookie stopped still gets "signed out" or "expired" for a while.
PRUNE_AFTER = timedelta(days=1)

UNKNOWN_SESSION = "Not signed in: the session cookie is unknown; sign in again"
ENDED_SESSION = "Signed out: this console session was ended; sign in again"
EXPIRED_SESSION = "Console session expired: it reached its maximum age; sign in again"
IDLE_SESSION = "Console session expired: it was not used for too long; sign in again"
INACTIVE_USER = "Console session revoked: its user is no longer active"
CLIENT_REQUIRED = (
    "The session cookie is accepted only with the header 'X-Inbox-Client: console'; "
    "other clients send 'Authorization: Bearer <token or API key>'"
)
FOREIGN_ORIGIN = (
    "Cross-site request refused: the session cookie is accepted only from this service's own origin"
)


def authentication_failed(reason: str, message: str) -> AuthenticationFailed:
    # As auth.authentication_failed says it; auth builds on this module, not the reverse.
    return AuthenticationFailed(message, {"reason": reason})


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def cookie_header(token: str, max_age: int, *, secure: bool) -> str:
    """The Set-Cookie value that hands a browser its session, out of scripts' reach."""
    cookie = f"{COOKIE}={token}; Max-Age={max_age}; Path=/; SameSite=Strict; HttpOnly"
    return cookie + "; Secure" if secure else cookie


def cleared_cookie_header(*, secure: bool) -> str:
    return cookie_header("", 0, secure=secure)


def secure_cookies(public_url: str | None, scheme: str) -> bool:
    """Secure when the service is public over https, or this request came over it."""
    return scheme == "https" or (public_url is not None and public_url.startswith("https://"))


def _origin(scheme: str, netloc: str) -> str:
    # Browsers leave the default port out of Origin; a Host header may carry it.
    scheme, netloc = scheme.lower(), netloc.lower()
    default = {"http": ":80", "https": ":443"}.get(scheme, "")
    if default and netloc.endswith(default):
        netloc = netloc.removesuffix(default)
    return f"{scheme}://{netloc}"


def same_origin(origin: str, scheme: str, host: str | None, public_url: str | None) -> bool:
    """Whether a request's Origin is the service's own: the scheme and Host it was sent
    to, or the public URL's origin."""
    parts = urlsplit(origin)
    if not parts.scheme or not parts.netloc:
        return False
    theirs = _origin(parts.scheme, parts.netloc)
    ours = {_origin(scheme, host)} if host else set()
    if public_url:
        public = urlsplit(public_url)
        ours.add(_origin(public.scheme, public.netloc))
    return theirs in ours


def check_origin(headers: Mapping[str, str], scheme: str, public_url: str | None) -> None:
    """AuthorizationFailed (403) for a request another site's page made."""
    origin = headers.get("origin")
    if origin is not None and not same_origin(origin, scheme, headers.get("host"), public_url):
        raise AuthorizationFailed(FOREIGN_ORIGIN, {"origin": origin[:200]})


def check_console_request(headers: Mapping[str, str], scheme: str, public_url: str | None) -> None:
    """Refuse a cookie a browser attached to a request that the console did not make:
    the custom header no other site can send without our consent, and no foreign Origin."""
    if headers.get(CLIENT_HEADER, "").strip().lower() != CLIENT:
        raise authentication_failed("missing", CLIENT_REQUIRED)
    check_origin(headers, scheme, public_url)


async def sign_in(
    db: Database, user_id: int, *, max_seconds: int, user_agent: str | None
) -> tuple[ConsoleSession, str]:
    """A new session of the user and its token, which is never stored."""
    token = secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    async with db.session(write=True) as session:
        user = await session.get(User, user_id)
        assert user is not None
        row = ConsoleSession(
            organization_id=user.organization_id,
            user_id=user_id,
            token_hash=digest(token),
            user_agent=user_agent[:300] if user_agent else None,
            created_at=now,
            last_used_at=now,
            expires_at=now + timedelta(seconds=max_seconds),
        )
        session.add(row)
        await session.commit()
    return row, token


async def sign_out(db: Database, session_id: int) -> None:
    async with db.session(write=True) as session:
        connection = await session.connection()
        await connection.execute(_END_ONE, {"session_id": session_id, "now": datetime.now(UTC)})
        await session.commit()


async def end_user_sessions(
    session: AsyncSession, user_id: int, *, keep: int | None = None
) -> None:
    """End, in the caller's transaction, every console session of the user but ``keep``."""
    statement = (
        update(ConsoleSession)
        .where(col(ConsoleSession.user_id) == user_id, col(ConsoleSession.ended_at).is_(None))
        .values(ended_at=datetime.now(UTC))
    )
    if keep is not None:
        statement = statement.where(col(ConsoleSession.id) != keep)
    connection = await session.connection()
    await connection.execute(statement)


async def session_lasts_until(db: Database, session_id: int, organization_id: int) -> datetime:
    """The absolute limit of a session that stands; AuthenticationFailed once it was
    ended or reached that limit. Idle time is not looked at: it is checked when a ticket
    is issued, and a socket in use keeps the console in use."""
    async with db.engine.connect() as connection:
        row = (await connection.execute(_STANDING, {"session_id": session_id})).first()
    if row is None or row.ended_at is not None or row.organization_id != organization_id:
        raise authentication_failed("revoked", ENDED_SESSION)
    if row.expires_at <= datetime.now(UTC):
        raise authentication_failed("expired", EXPIRED_SESSION)
    return row.expires_at  # type: ignore[no-any-return]


async def prune(db: Database, idle_seconds: int) -> int:
    """Delete the sessions ended or lapsed over a day ago; answer how many."""
    before = datetime.now(UTC) - PRUNE_AFTER
    async with db.session(write=True) as session:
        connection = await session.connection()
        params = {"before": before, "idle_before": before - timedelta(seconds=idle_seconds)}
        result = await connection.execute(_PRUNE, params)
        await session.commit()
    return int(getattr(result, "rowcount", 0) or 0)


# Built once: the first runs for every sign-out, the second for every ticket redeemed.
_END_ONE = (
    update(ConsoleSession)
    .where(
        col(ConsoleSession.id) == bindparam("session_id"), col(ConsoleSession.ended_at).is_(None)
    )
    .values(ended_at=bindparam("now"))
)
_STANDING = select(
    col(ConsoleSession.organization_id),
    col(ConsoleSession.ended_at),
    col(ConsoleSession.expires_at),
).where(col(ConsoleSession.id) == bindparam("session_id"))
_PRUNE = delete(ConsoleSession).where(
    or_(
        col(ConsoleSession.ended_at) < bindparam("before"),
        col(ConsoleSession.expires_at) < bindparam("before"),
        col(ConsoleSession.last_used_at) < bindparam("idle_before"),
    )
)
_TOUCH = (
    update(ConsoleSession)
    .where(
        col(ConsoleSession.id) == bindparam("session_id"), col(ConsoleSession.ended_at).is_(None)
    )
    .values(last_used_at=bindparam("now"))
)


@dataclass(frozen=True)
class SessionGrant:
    """A session that stands, as a process read it."""

    session_id: int
    user: User
    last_used_at: datetime
    # The absolute limit.
    expires_at: datetime
    idle: timedelta
    # When this process reads it again (monotonic clock).
    fresh_until: float

    @property
    def organization_id(self) -> int:
        return self.user.organization_id

    @property
    def lapses_at(self) -> datetime:
        """When it stops unless used again: the idle limit, never past the absolute one."""
        return min(self.expires_at, self.last_used_at + self.idle)


class ConsoleSessions:
    """Resolves session cookies, remembering each session that stands for ``ttl`` seconds
    so that a busy console is not a database read per request."""

    def __init__(
        self, db: Database, idle_seconds: int, *, ttl: float = SESSION_TTL_SECONDS
    ) -> None:
        self.db = db
        self.idle = timedelta(seconds=idle_seconds)
        self.ttl = ttl
        self.touch_every = min(TOUCH_INTERVAL, self.idle / 4)
        self._known: dict[str, SessionGrant] = {}
        # Bumped by every forget: a read that started before one must not store it.
        self._generation = 0

    async def resolve(self, token: str) -> SessionGrant:
        """The session the cookie names, slid on by this use; AuthenticationFailed when it
        does not stand."""
        key = digest(token)
        generation = self._generation
        known = self._known.get(key)
        if known is None or known.fresh_until <= time.monotonic():
            known = await self._read(key)
        now = datetime.now(UTC)
        if now >= known.expires_at:
            self._known.pop(key, None)
            raise authentication_failed("expired", EXPIRED_SESSION)
        if now >= known.last_used_at + self.idle:
            self._known.pop(key, None)
            raise authentication_failed("expired", IDLE_SESSION)
        touch = now - known.last_used_at >= self.touch_every
        if touch:
            known = replace(known, last_used_at=now)
        # Stored before the touch is written, so that requests arriving meanwhile skip it.
        if generation == self._generation:
            self._known[key] = known
        if touch:
            async with self.db.session(write=True) as session:
                connection = await session.connection()
                await connection.execute(_TOUCH, {"session_id": known.session_id, "now": now})
                await session.commit()
        return known

    def forget_session(self, session_id: int) -> None:
        self._forget(lambda known: known.session_id == session_id)

    def forget_user(self, user_id: int) -> None:
        self._forget(lambda known: known.user.id == user_id)

    def _forget(self, which: Callable[[SessionGrant], bool]) -> None:
        self._generation += 1
        for key in [k for k, known in self._known.items() if which(known)]:
            del self._known[key]

    async def _read(self, key: str) -> SessionGrant:
        async with self.db.session() as session:
            found = (
                await session.exec(
                    select(ConsoleSession, User)
                    .join(User, col(User.id) == col(ConsoleSession.user_id))
                    .where(col(ConsoleSession.token_hash) == key)
                )
            ).first()
        # Refusals are not remembered: nothing a guess sends fills memory.
        self._known.pop(key, None)
        if found is None:
            raise authentication_failed("invalid", UNKNOWN_SESSION)
        row, user = found
        if row.ended_at is not None:
            raise authentication_failed("revoked", ENDED_SESSION)
        if not user.is_active or user.organization_id != row.organization_id:
            raise authentication_failed("revoked", INACTIVE_USER)
        assert row.id is not None
        return SessionGrant(
            session_id=row.id,
            user=user,
            last_used_at=row.last_used_at,
            expires_at=row.expires_at,
            idle=self.idle,
            fresh_until=time.monotonic() + self.ttl,
        )
