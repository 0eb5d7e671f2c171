"""Organizations, users and API keys: shared by the REST API and the CLI."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from ..db import Database
from ..errors import Conflict, NotFound
from ..models import ApiKey, Organization, User
from ..security import generate_api_key, hash_password
from .console_sessions import end_user_sessions
from .refresh_tokens import end_user_families


async def create_organization(db: Database, name: str) -> Organization:
    org = Organization(name=name)
    async with db.session() as session:
        session.add(org)
        await session.commit()
    return org


def _email_taken() -> Conflict:
    # Addresses are unique across organizations (they sign in): the answer is the same
    # whichever organization has the address, and says nothing of it, nor the address.
    message = "is already in use"
    return Conflict(
        f"email: {message}",
        {"fields": [{"field": "email", "message": message, "type": "conflict"}]},
    )


async def create_user(
    db: Database, org_id: int, *, email: str, password: str, role: str = "agent", name: str = ""
) -> User:
    email = email.strip().lower()
    user = User(
        organization_id=org_id,
        email=email,
        name=name,
        role=role,
        password_hash=await hash_password(password),
    )
    async with db.session() as session:
        if await session.get(Organization, org_id) is None:
            raise NotFound(f"Organization {org_id} not found")
        taken = await session.exec(select(User.id).where(func.lower(User.email) == email))
        if taken.first() is not None:
            raise _email_taken()
        session.add(user)
        try:
            await session.commit()
        except IntegrityError:
            raise _email_taken() from None
    return user


async def create_api_key(
    db: Database,
    org_id: int,
    *,
    name: str,
    role: str = "agent",
    scopes: Collection[str] = ("api",),
    expires_at: datetime | None = None,
    created_by_id: int | None = None,
) -> tuple[ApiKey, str]:
    """Store a new key's digest; the key itself is returned once and never again.

    The key acts for ``created_by_id`` (its owner until an admin transfers it) and stops
    while that user is deactivated; a key nobody made (the command line's) has no owner.
    """
    generated = generate_api_key()
    row = ApiKey(
        organization_id=org_id,
        name=name,
        role=role,
        scopes=",".join(sorted(set(scopes))),
        key_hash=generated.digest,
        prefix=generated.prefix,
        created_by_id=created_by_id,
        owner_id=created_by_id,
        expires_at=expires_at,
    )
    async with db.session() as session:
        if await session.get(Organization, org_id) is None:
            raise NotFound(f"Organization {org_id} not found")
        session.add(row)
        await session.commit()
    return row, generated.key


async def end_sessions(
    session: AsyncSession,
    user_id: int,
    *,
    keep_console_session: int | None = None,
    keep_refresh_family: int | None = None,
) -> int:
    """Bump the user's session epoch in the caller's transaction: every access token
    (and ticket) issued before is refused once it commits, and every console session
    but ``keep_console_session`` and every refresh family but ``keep_refresh_family``
    ends. Answers the new epoch."""
    await end_user_sessions(session, user_id, keep=keep_console_session)
    await end_user_families(session, user_id, keep=keep_refresh_family)
    connection = await session.connection()
    bumped = await connection.execute(
        update(User)
        .where(col(User.id) == user_id)
        .values(session_epoch=col(User.session_epoch) + 1)
        .returning(col(User.session_epoch))
    )
    return int(bumped.scalar_one())


async def keys_owned_by(session: AsyncSession, user_id: int) -> list[int]:
    """The ids of the keys that act for the user."""
    rows = await session.exec(
        select(ApiKey.id).where(col(ApiKey.owner_id) == user_id).order_by(col(ApiKey.id))
    )
    return [key_id for key_id in rows if key_id is not None]
