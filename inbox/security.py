"""Passwords, access tokens and API keys."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

JWT_ALGORITHM = "HS256"
API_KEY_PREFIX = "ibx_"

_hasher = PasswordHasher()
# Verified against when the email is unknown, so both paths cost the same.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


async def hash_password(password: str) -> str:
    # Argon2 is slow on purpose: keep it off the event loop that serves everyone else.
    return await asyncio.to_thread(_hasher.hash, password)


def _verify(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


async def verify_password(password_hash: str | None, password: str) -> bool:
    return await asyncio.to_thread(_verify, password_hash, password)


@dataclass(frozen=True)
class TokenClaims:
    user_id: int
    organization_id: int
    role: str
    issued_at: datetime
    expires_at: datetime


def issue_token(
    *, user_id: int, organization_id: int, role: str, key: str, ttl_seconds: int
) -> str:
    now = datetime.now(UTC)
    claims = {
        "sub": str(user_id),
        "org": organization_id,
        "role": role,
        "iat": now,
        "exp": now + timedelta(seconds=ttl_seconds),
    }
    return jwt.encode(claims, key, algorithm=JWT_ALGORITHM)


class InvalidToken(Exception):
    pass


def decode_token(token: str, key: str) -> TokenClaims:
    """Decode and check an access token; the algorithm list is pinned, ``exp`` required."""
    try:
        payload: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[JWT_ALGORITHM],
            options={"require": ["exp", "iat", "sub", "org"]},
        )
        return TokenClaims(
            user_id=int(payload["sub"]),
            organization_id=int(payload["org"]),
            role=str(payload.get("role", "")),
            issued_at=datetime.fromtimestamp(int(payload["iat"]), UTC),
            expires_at=datetime.fromtimestamp(int(payload["exp"]), UTC),
        )
    except (jwt.PyJWTError, ValueError, TypeError) as exc:
        raise InvalidToken(str(exc)) from None


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2 and not token.startswith(API_KEY_PREFIX)


@dataclass(frozen=True)
class NewApiKey:
    key: str
    prefix: str
    digest: str


def generate_api_key() -> NewApiKey:
    key = API_KEY_PREFIX + secrets.token_urlsafe(32)
    return NewApiKey(key=key, prefix=key[:12], digest=api_key_digest(key))


def api_key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()
