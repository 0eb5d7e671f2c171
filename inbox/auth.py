"""Who is calling: a user's access token or an organization's API key."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, cast

import jwt
from sqlalchemy import Select, bindparam, select, update
from sqlalchemy.engine import Row
from sqlmodel import col

from .db import Database
from .errors import AuthenticationFailed, AuthorizationFailed
from .models import ApiKey, User
from .security import (
    API_KEY_PREFIX,
    JWT_ALGORITHM,
    InvalidToken,
    api_key_digest,
    decode_token,
    looks_like_jwt,
)
from .services import refresh_tokens
from .services.console_sessions import ConsoleSessions
from .settings import Settings

# Why a credential is refused, in the error's details: REST and the WebSocket handshake
# say it alike.
Reason = Literal["missing", "invalid", "expired", "revoked"]

MISSING_CREDENTIALS = "Authentication required: send 'Authorization: Bearer <token or API key>'"
MALFORMED_AUTHORIZATION = "Invalid Authorization header: send 'Bearer <token or API key>'"
INVALID_JWT = "Invalid access token"
EXPIRED_JWT = "Access token expired"
REVOKED_JWT = "Access token revoked: its user is no longer active"
ENDED_SESSION = (
    "Access token revoked: its user's sessions were ended (sign-out everywhere, a password "
    "change or a deactivation); sign in again"
)
INVALID_API_KEY = "Invalid API key"
EXPIRED_API_KEY = "API key expired"
DELETED_API_KEY = "API key revoked: it was deleted"
SUSPENDED_API_KEY = (
    "API key revoked: the user who owns it is deactivated; an admin can transfer it to an "
    "active admin (PATCH /api/api-keys/{id} with owner_id)"
)
INVALID_CREDENTIAL = "Invalid credential: neither an access token nor an API key"

# What a key may be used for: "api" the REST API and /ws, "ingest" posting messages to
# /webhooks/messages/incoming. A user's access token is "api" only.
Scope = Literal["api", "ingest"]
SCOPES: tuple[Scope, ...] = ("api", "ingest")
USER_CANNOT_INGEST = (
    "Only an API key with the ingest scope may post messages here, not a user's access token"
)
KEY_CANNOT_INGEST = (
    'This API key lacks the ingest scope: create a key with "scopes": ["ingest"] to post '
    "messages"
)
KEY_CANNOT_USE_API = (
    "This API key is for ingest only: the REST API and /ws need a key with the api scope"
)

# A viewer reads (analytics, conversations, contacts, /ws) and writes nothing: a
# dashboard or a wall screen.
Role = Literal["viewer", "agent", "admin", "owner"]
ROLES: tuple[Role, ...] = ("viewer", "agent", "admin", "owner")
_RANK: dict[str, int] = {role: rank for rank, role in enumerate(ROLES)}

# last_used_at is a hint, not an audit log: one write a minute per key at most.
API_KEY_TOUCH_INTERVAL = timedelta(seconds=60)

# How long a process trusts a key it has read. Deleting a key through any process
# reaches every other one at once, over the broker; this bounds what nothing
# announces (a row deleted by hand, a broker that was down).
API_KEY_TTL_SECONDS = 5.0

# Built once: these run for every request made with an API key. The owner's row comes
# along: a key acts for its owner and stops while they are deactivated.
_KEY_COLUMNS: Select[*tuple[Any, ...]] = select(
    col(ApiKey.id),
    col(ApiKey.organization_id),
    col(ApiKey.role),
    col(ApiKey.scopes),
    col(ApiKey.owner_id),
    col(ApiKey.expires_at),
    col(ApiKey.last_used_at),
    col(User.is_active).label("owner_active"),
).outerjoin(User, col(User.id) == col(ApiKey.owner_id))
_READ_KEY = _KEY_COLUMNS.where(col(ApiKey.key_hash) == bindparam("digest"))
_READ_KEY_BY_ID = _KEY_COLUMNS.where(col(ApiKey.id) == bindparam("key_id"))
_TOUCH_KEY = (
    update(ApiKey)
    .where(col(ApiKey.id) == bindparam("key_id"))
    .values(last_used_at=bindparam("now"))
)


@dataclass(frozen=True)
class Principal:
    organization_id: int
    role: Role
    user: User | None = None
    api_key_id: int | None = None
    # When the credential lapses: the token's exp, the key's expires_at (None: never).
    expires_at: datetime | None = None
    # A user's: the epoch their token carries (the current one, or it was refused).
    session_epoch: int | None = None
    # A key's: what it may be used for, and the user it acts for.
    scopes: frozenset[str] = frozenset()
    owner_id: int | None = None
    # A console session's (the browser's cookie): its sockets close when it ends.
    session_id: int | None = None
    # An API client's session (the refresh family its access token was issued in): its
    # sockets close when it ends, and they outlive one access token.
    family_id: int | None = None

    @property
    def user_id(self) -> int | None:
        return self.user.id if self.user is not None else None

    def has_role(self, role: Role) -> bool:
        return _RANK[self.role] >= _RANK[role]

    def require(self, role: Role) -> None:
        if not self.has_role(role):
            raise AuthorizationFailed(f"This action needs the {role} role")


def as_role(value: str) -> Role:
    """A stored role as the type; anything unknown counts as the least privileged."""
    return cast(Role, value) if value in _RANK else "viewer"


def role_at_least(role: str, minimum: Role) -> bool:
    return _RANK.get(role, -1) >= _RANK[minimum]


def authentication_failed(reason: Reason, message: str) -> AuthenticationFailed:
    return AuthenticationFailed(message, {"reason": reason})


def parse_scopes(stored: str) -> frozenset[str]:
    return frozenset(s for s in stored.split(",") if s)


def check_scope(principal: Principal, scope: Scope) -> None:
    """AuthorizationFailed unless the credential may be used for ``scope``."""
    details = {"required_scope": scope}
    if principal.api_key_id is None:
        if scope != "api":
            raise AuthorizationFailed(USER_CANNOT_INGEST, details)
        return
    if scope not in principal.scopes:
        message = KEY_CANNOT_INGEST if scope == "ingest" else KEY_CANNOT_USE_API
        raise AuthorizationFailed(message, details)


def credentials_from_headers(authorization: str | None, api_key: str | None) -> str | None:
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise authentication_failed("invalid", MALFORMED_AUTHORIZATION)
        return token.strip()
    return api_key.strip() if api_key else None


@dataclass(frozen=True)
class _KnownKey:
    principal: Principal
    last_used_at: datetime | None
    expires: float


class Authenticator:
    """Resolves a bearer token, an API key or a console session to a principal.

    API keys are remembered for ``ttl`` seconds: a dashboard or a source posting
    generic messages authenticates every request, and the read was a database
    round trip on each one. Only keys that exist are remembered, so guessing
    fills nothing.
    """

    def __init__(
        self, db: Database, settings: Settings, *, ttl: float = API_KEY_TTL_SECONDS
    ) -> None:
        self.db = db
        self.settings = settings
        self.ttl = ttl
        self._keys: dict[str, _KnownKey] = {}
        # Bumped by every forget: a read that started before one must not store
        # what it read, which may be the deleted key.
        self._generation = 0
        self.sessions = ConsoleSessions(db, settings.session_idle)

    async def authenticate(self, credential: str | None, scope: Scope = "api") -> Principal:
        """The caller's principal, or AuthenticationFailed (401); AuthorizationFailed (403)
        for a genuine credential that may not be used for ``scope``."""
        if not credential:
            raise authentication_failed("missing", MISSING_CREDENTIALS)
        if looks_like_jwt(credential):
            principal = await _from_access_token(self.db, self.settings.signing_key, credential)
            check_scope(principal, scope)
            return principal
        return await self._from_api_key(credential, scope)

    async def authenticate_session(self, token: str) -> Principal:
        """The principal of a console session's cookie, whose use slides the session on;
        AuthenticationFailed when it was ended, lapsed or its user deactivated."""
        grant = await self.sessions.resolve(token)
        return Principal(
            organization_id=grant.organization_id,
            role=as_role(grant.user.role),
            user=grant.user,
            expires_at=grant.lapses_at,
            session_epoch=grant.user.session_epoch,
            session_id=grant.session_id,
        )

    def forget_session(self, session_id: int) -> None:
        """Stop trusting what was read of a console session: it was ended."""
        self.sessions.forget_session(session_id)

    def forget_key(self, api_key_id: int) -> None:
        """Stop trusting what was read of a key; call once its deletion (or transfer) has
        committed."""
        self._forget(lambda known: known.principal.api_key_id == api_key_id)

    def forget_owner(self, user_id: int) -> None:
        """Stop trusting what was read of a user's keys and console sessions: they were
        deactivated or their sessions ended."""
        self._forget(lambda known: known.principal.owner_id == user_id)
        self.sessions.forget_user(user_id)

    def _forget(self, which: Callable[[_KnownKey], bool]) -> None:
        self._generation += 1
        for digest in [d for d, known in self._keys.items() if which(known)]:
            del self._keys[digest]

    async def _from_api_key(self, key: str, scope: Scope) -> Principal:
        digest = api_key_digest(key)
        generation = self._generation
        now = time.monotonic()
        known = self._keys.get(digest)
        if known is None or known.expires <= now:
            known = await self._read(key, digest, now + self.ttl)
        used_at = datetime.now(UTC)
        lapses = known.principal.expires_at
        if lapses is not None and lapses <= used_at:
            self._keys.pop(digest, None)
            raise authentication_failed("expired", EXPIRED_API_KEY)
        check_scope(known.principal, scope)
        touch = known.last_used_at is None or used_at - known.last_used_at > API_KEY_TOUCH_INTERVAL
        if touch:
            known = replace(known, last_used_at=used_at)
        # Stored before the touch is written, so that requests arriving meanwhile skip it.
        if generation == self._generation:
            self._keys[digest] = known
        if touch:
            async with self.db.session(write=True) as session:
                connection = await session.connection()
                params = {"key_id": known.principal.api_key_id, "now": used_at}
                await connection.execute(_TOUCH_KEY, params)
                await session.commit()
        return known.principal

    async def _read(self, key: str, digest: str, expires: float) -> _KnownKey:
        async with self.db.engine.connect() as connection:
            row = (await connection.execute(_READ_KEY, {"digest": digest})).first()
        if row is None:
            self._keys.pop(digest, None)
            raise _not_a_key(key)
        # Refused keys are not remembered: a transfer to an active owner counts at once.
        return _KnownKey(key_principal(row), row.last_used_at, expires)


def key_principal(row: Row[Any]) -> Principal:
    """The principal of a key row of ``_KEY_COLUMNS``; AuthenticationFailed when the key
    has expired or its owner is deactivated."""
    if row.owner_id is not None and not row.owner_active:
        raise authentication_failed("revoked", SUSPENDED_API_KEY)
    if row.expires_at is not None and row.expires_at <= datetime.now(UTC):
        raise authentication_failed("expired", EXPIRED_API_KEY)
    return Principal(
        organization_id=row.organization_id,
        role=as_role(row.role),
        api_key_id=row.id,
        expires_at=row.expires_at,
        scopes=parse_scopes(row.scopes),
        owner_id=row.owner_id,
    )


async def api_key_principal(db: Database, api_key_id: int, organization_id: int) -> Principal:
    """The principal of a genuine credential naming this key; AuthenticationFailed when the
    key was deleted, moved, expired or its owner deactivated since it was issued."""
    async with db.engine.connect() as connection:
        row = (await connection.execute(_READ_KEY_BY_ID, {"key_id": api_key_id})).first()
    if row is None or row.organization_id != organization_id:
        raise authentication_failed("revoked", DELETED_API_KEY)
    return key_principal(row)


def _not_a_key(credential: str) -> AuthenticationFailed:
    # A garbage ?token= is looked up as a key too; calling it an invalid API key misleads.
    if credential.startswith(API_KEY_PREFIX):
        return authentication_failed("invalid", INVALID_API_KEY)
    return authentication_failed("invalid", INVALID_CREDENTIAL)


def _expired_only(token: str, signing_key: str) -> bool:
    """Whether a refused token is genuine and refused for its age alone.

    Asked only once the token is refused; the signature is checked first, so a forged
    token is never called expired.
    """
    try:
        claims = jwt.decode(
            token,
            signing_key,
            algorithms=[JWT_ALGORITHM],
            options={"require": ["exp"], "verify_exp": False},
        )
    except jwt.PyJWTError:
        return False
    exp = claims.get("exp")
    return isinstance(exp, int | float) and exp <= time.time()


async def _from_access_token(db: Database, signing_key: str, token: str) -> Principal:
    try:
        claims = decode_token(token, signing_key)
    except InvalidToken:
        if _expired_only(token, signing_key):
            raise authentication_failed("expired", EXPIRED_JWT) from None
        raise authentication_failed("invalid", INVALID_JWT) from None
    return await user_principal(
        db,
        claims.user_id,
        claims.organization_id,
        claims.session_epoch,
        claims.expires_at,
        family_id=claims.family_id,
    )


async def user_principal(
    db: Database,
    user_id: int,
    organization_id: int,
    epoch: int,
    expires_at: datetime,
    *,
    family_id: int | None = None,
) -> Principal:
    """The principal of a genuine credential naming this user (and the refresh family it
    was issued in); AuthenticationFailed when it was revoked since it was issued."""
    async with db.session() as session:
        user = await session.get(User, user_id)
        family = None
        if family_id is not None:
            connection = await session.connection()
            params = {"family_id": family_id}
            family = (await connection.execute(refresh_tokens.STANDING, params)).first()
    # Genuine, unexpired, but its user was deactivated, deleted or moved since.
    if user is None or not user.is_active or user.organization_id != organization_id:
        raise authentication_failed("revoked", REVOKED_JWT)
    if user.session_epoch != epoch:
        raise authentication_failed("revoked", ENDED_SESSION)
    if family_id is not None:
        if family is None or family.organization_id != organization_id:
            raise authentication_failed("revoked", ENDED_SESSION)
        refresh_tokens.check_standing(family.ended_at, family.end_reason, family.expires_at)
    # The role stored now wins over the one in the token: demotions apply at once.
    return Principal(
        organization_id=user.organization_id,
        role=as_role(user.role),
        user=user,
        expires_at=expires_at,
        session_epoch=user.session_epoch,
        family_id=family_id,
    )
