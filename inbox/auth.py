"""Who is calling: a user's access token or an organization's API key."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Literal, cast

import jwt
from sqlalchemy import bindparam, select, update
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
from .settings import Settings

# Why a credential is refused, in the error's details: REST and the WebSocket handshake
# say it alike.
Reason = Literal["missing", "invalid", "expired", "revoked"]

MISSING_CREDENTIALS = "Authentication required: send 'Authorization: Bearer <token or API key>'"
MALFORMED_AUTHORIZATION = "Invalid Authorization header: send 'Bearer <token or API key>'"
INVALID_JWT = "Invalid access token"
EXPIRED_JWT = "Access token expired"
REVOKED_JWT = "Access token revoked: its user is no longer active"
INVALID_API_KEY = "Invalid API key"
INVALID_CREDENTIAL = "Invalid credential: neither an access token nor an API key"

Role = Literal["agent", "admin", "owner"]
ROLES: tuple[Role, ...] = ("agent", "admin", "owner")
_RANK: dict[str, int] = {role: rank for rank, role in enumerate(ROLES)}

# last_used_at is a hint, not an audit log: one write a minute per key at most.
API_KEY_TOUCH_INTERVAL = timedelta(seconds=60)

# How long a process trusts a key it has read. Deleting a key through any process
# reaches every other one at once, over the broker; this bounds what nothing
# announces (a row deleted by hand, a broker that was down).
API_KEY_TTL_SECONDS = 5.0

# Built once: these run for every request made with an API key.
_READ_KEY = select(
    col(ApiKey.id), col(ApiKey.organization_id), col(ApiKey.role), col(ApiKey.last_used_at)
).where(col(ApiKey.key_hash) == bindparam("digest"))
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
    expires_at: datetime | None = None

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
    return cast(Role, value) if value in _RANK else "agent"


def role_at_least(role: str, minimum: Role) -> bool:
    return _RANK.get(role, -1) >= _RANK[minimum]


def authentication_failed(reason: Reason, message: str) -> AuthenticationFailed:
    return AuthenticationFailed(message, {"reason": reason})


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
    """Resolves a bearer token or an API key to a principal.

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

    async def authenticate(self, credential: str | None) -> Principal:
        """The caller's principal, or AuthenticationFailed."""
        if not credential:
            raise authentication_failed("missing", MISSING_CREDENTIALS)
        if looks_like_jwt(credential):
            return await _from_access_token(self.db, self.settings.signing_key, credential)
        return await self._from_api_key(credential)

    def forget_key(self, api_key_id: int) -> None:
        """Stop trusting a deleted key; call once its deletion has committed."""
        self._generation += 1
        for digest in [d for d, k in self._keys.items() if k.principal.api_key_id == api_key_id]:
            del self._keys[digest]

    async def _from_api_key(self, key: str) -> Principal:
        digest = api_key_digest(key)
        generation = self._generation
        now = time.monotonic()
        known = self._keys.get(digest)
        if known is None or known.expires <= now:
            known = await self._read(key, digest, now + self.ttl)
        used_at = datetime.now(UTC)
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
        principal = Principal(
            organization_id=row.organization_id, role=as_role(row.role), api_key_id=row.id
        )
        return _KnownKey(principal, row.last_used_at, expires)


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
    async with db.session() as session:
        user = await session.get(User, claims.user_id)
    # Genuine, unexpired, but its user was deactivated, deleted or moved since.
    if user is None or not user.is_active or user.organization_id != claims.organization_id:
        raise authentication_failed("revoked", REVOKED_JWT)
    # The role stored now wins over the one in the token: demotions apply at once.
    return Principal(
        organization_id=user.organization_id,
        role=as_role(user.role),
        user=user,
        expires_at=claims.expires_at,
    )
