"""Organizations, users and API keys: shared by the REST API and the CLI."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlmodel import func, select

from ..db import Database
from ..errors import Conflict, NotFound
from ..models import ApiKey, Organization, User
from ..security import generate_api_key, hash_password


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
    db: Database, org_id: int, *, name: str, role: str = "agent", created_by_id: int | None = None
) -> tuple[ApiKey, str]:
    """Store a new key's digest; the key itself is returned once and never again."""
    generated = generate_api_key()
    row = ApiKey(
        organization_id=org_id,
        name=name,
        role=role,
        key_hash=generated.digest,
        prefix=generated.prefix,
        created_by_id=created_by_id,
    )
    async with db.session() as session:
        if await session.get(Organization, org_id) is None:
            raise NotFound(f"Organization {org_id} not found")
        session.add(row)
        await session.commit()
    return row, generated.key
