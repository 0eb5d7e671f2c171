"""Who is calling: a user's access token or an organization's API key."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, cast

from sqlmodel import select

from .db import Database
from .errors import AuthenticationFailed, AuthorizationFailed
from .models import ApiKey, User
from .security import InvalidToken, api_key_digest, decode_token, looks_like_jwt

Role = Literal["agent", "admin", "owner"]
ROLES: tuple[Role, ...] = ("agent", "admin", "owner")
_RANK: dict[str, int] = {role: rank for rank, role in enumerate(ROLES)}

# last_used_at is a hint, not an audit log: one write a minute per key at most.
API_KEY_TOUCH_INTERVAL = timedelta(seconds=60)


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


def credentials_from_headers(authorization: str | None, api_key: str | None) -> str | None:
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthenticationFailed("Authorization must be 'Bearer <token or API key>'")
        return token.strip()
    return api_key.strip() if api_key else None


async def authenticate(db: Database, signing_key: str, credential: str | None) -> Principal:
    """Resolve a bearer token or API key to a principal, or raise AuthenticationFailed."""
    if not credential:
        raise AuthenticationFailed("Missing credentials: send 'Authorization: Bearer <token>'")
    if looks_like_jwt(credential):
        return await _from_access_token(db, signing_key, credential)
    return await _from_api_key(db, credential)


async def _from_access_token(db: Database, signing_key: str, token: str) -> Principal:
    try:
        claims = decode_token(token, signing_key)
    except InvalidToken:
        raise AuthenticationFailed("Invalid or expired access token") from None
    async with db.session() as session:
        user = await session.get(User, claims.user_id)
    if user is None or not user.is_active or user.organization_id != claims.organization_id:
        raise AuthenticationFailed("Invalid or expired access token")
    # The role stored now wins over the one in the token: demotions apply at once.
    return Principal(
        organization_id=user.organization_id,
        role=as_role(user.role),
        user=user,
        expires_at=claims.expires_at,
    )


async def _from_api_key(db: Database, key: str) -> Principal:
    digest = api_key_digest(key)
    async with db.session() as session:
        api_key = (await session.exec(select(ApiKey).where(ApiKey.key_hash == digest))).first()
        if api_key is None:
            raise AuthenticationFailed("Invalid API key")
        now = datetime.now(UTC)
        if api_key.last_used_at is None or now - api_key.last_used_at > API_KEY_TOUCH_INTERVAL:
            api_key.last_used_at = now
            session.add(api_key)
            await session.commit()
    return Principal(
        organization_id=api_key.organization_id, role=as_role(api_key.role), api_key_id=api_key.id
    )
