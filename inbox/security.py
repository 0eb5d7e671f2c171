"""Passwords, access tokens and API keys."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

JWT_ALGORITHM = "HS256"
API_KEY_PREFIX = "ibx_"
# The access token's claim carrying its user's session epoch at issue.
EPOCH_CLAIM = "epoch"
# The claim naming the refresh family (an API client's session) a token was issued in.
FAMILY_CLAIM = "fam"

_hasher = PasswordHasher()


@cache
def _dummy_hash() -> str:
    """Verified against when the email is unknown, so both paths cost the same."""
    return _hasher.hash(secrets.token_urlsafe(16))


async def hash_password(password: str) -> str:
    # Argon2 is slow on purpose: keep it off the event loop that serves everyone else.
    return await asyncio.to_thread(_hasher.hash, password)


def _verify(password_hash: str | None, password: str) -> bool:
    try:
        verified = _hasher.verify(password_hash or _dummy_hash(), password)
        return verified and password_hash is not None
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
    session_epoch: int
    family_id: int | None = None


def issue_token(
    *,
    user_id: int,
    organization_id: int,
    role: str,
    key: str,
    ttl_seconds: int,
    session_epoch: int = 0,
    family_id: int | None = None,
) -> str:
    """An access token; ``session_epoch`` is the user's, so bumping it revokes the token,
    and so does ending the refresh family ``family_id`` it was issued in."""
    now = datetime.now(UTC)
    claims = {
        "sub": str(user_id),
        "org": organization_id,
        "role": role,
        EPOCH_CLAIM: session_epoch,
        "iat": now,
        "exp": now + timedelta(seconds=ttl_seconds),
    }
    if family_id is not None:
        claims[FAMILY_CLAIM] = family_id
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
            # Tokens issued before epochs existed count as the first one.
            session_epoch=_epoch(payload.get(EPOCH_CLAIM, 0)),
            family_id=_family(payload.get(FAMILY_CLAIM)),
        )
    except (jwt.PyJWTError, ValueError, TypeError) as exc:
        raise InvalidToken(str(exc)) from None


def _epoch(value: object) -> int:
    # A signed token carries what we wrote, but a bool or a float is refused, not coerced.
    if type(value) is not int:
        raise ValueError(f"{EPOCH_CLAIM} must be an integer")
    return value


def _family(value: object) -> int | None:
    if value is None:
        return None
    if type(value) is not int:
        raise ValueError(f"{FAMILY_CLAIM} must be an integer")
    return value


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
