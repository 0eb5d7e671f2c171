"""Users as the command line reaches them: by email, counted, their password set anew."""

from __future__ import annotations

from sqlmodel import func, select

from ..db import Database
from ..models import User, utcnow
from ..security import hash_password
from .accounts import end_sessions


async def user_by_email(db: Database, email: str) -> User | None:
    """The user with this email, whatever its case."""
    async with db.session() as session:
        return (
            await session.exec(select(User).where(func.lower(User.email) == email.lower()))
        ).first()


async def count_users(db: Database) -> int:
    async with db.session() as session:
        return int((await session.exec(select(func.count()).select_from(User))).one())


async def set_password(db: Database, email: str, password: str) -> User | None:
    """Give the user with this email a new password and end every session they have
    (servers close their sockets within seconds); None when there is no such user."""
    password_hash = await hash_password(password)
    async with db.session(write=True) as session:
        user = (
            await session.exec(select(User).where(func.lower(User.email) == email.lower()))
        ).first()
        if user is None:
            return None
        user.password_hash = password_hash
        user.updated_at = utcnow()
        session.add(user)
        assert user.id is not None
        await end_sessions(session, user.id)
        await session.commit()
    return user
