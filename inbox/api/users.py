from __future__ import annotations

from typing import Any

from sqlmodel import col, func, select

from ..auth import Principal
from ..errors import AuthorizationFailed, Conflict
from ..models import User
from ..schemas.common import Page
from ..schemas.users import UserCreate, UserPatch, UserPublic, UserQuery
from ..security import hash_password
from ..services import accounts
from ..web.endpoint import Context, Endpoints
from .common import apply_changes, count, get_owned, omit_nulls

api = Endpoints("users")


@api.get(
    "/api/users",
    summary="List users (admin)",
    query=UserQuery,
    response=Page[UserPublic],
    role="admin",
)
async def list_users(ctx: Context[UserQuery, None]) -> Page[UserPublic]:
    q = ctx.query
    stmt = select(User).where(User.organization_id == ctx.org_id)
    if q.role:
        stmt = stmt.where(User.role == q.role)
    if q.active is not None:
        stmt = stmt.where(User.is_active == q.active)
    async with ctx.state.db.session() as session:
        total = await count(session, stmt)
        rows = await session.exec(stmt.order_by(col(User.id)).limit(q.limit).offset(q.offset))
        items = [UserPublic.model_validate(r) for r in rows]
    return Page.of(items, total=total, limit=q.limit, offset=q.offset)


@api.post(
    "/api/users",
    summary="Create a user (admin)",
    body=UserCreate,
    response=UserPublic,
    status=201,
    role="admin",
    errors=(409,),
)
async def create_user(ctx: Context[None, UserCreate]) -> UserPublic:
    if ctx.body.role == "owner":
        ctx.principal.require("owner")
    user = await accounts.create_user(
        ctx.state.db,
        ctx.org_id,
        email=ctx.body.email,
        password=ctx.body.password,
        role=ctx.body.role,
        name=ctx.body.name,
    )
    return UserPublic.model_validate(user)


@api.get(
    "/api/users/{user_id:int}", summary="Get a user (admin)", response=UserPublic, role="admin"
)
async def get_user(ctx: Context[None, None]) -> UserPublic:
    async with ctx.state.db.session() as session:
        user = await get_owned(session, User, ctx.path["user_id"], ctx.org_id)
    return UserPublic.model_validate(user)


def _require_owner_for(principal: Principal, user: User, changes: dict[str, Any]) -> None:
    # Only an owner may touch an owner or make one.
    if (user.role == "owner" or changes.get("role") == "owner") and not principal.has_role("owner"):
        raise AuthorizationFailed("Only an owner can change an owner or grant ownership")


async def _change_user(ctx: Context[Any, Any], changes: dict[str, Any]) -> UserPublic:
    principal = ctx.principal
    epoch: int | None = None
    stopped_keys: list[int] = []
    password = changes.pop("password", None)
    if password is not None:
        # Hashed before the transaction: Argon2 takes its time, the write lock must not.
        changes["password_hash"] = await hash_password(password)
    async with ctx.state.db.session(write=True) as session:
        user = await get_owned(session, User, ctx.path["user_id"], ctx.org_id)
        _require_owner_for(principal, user, changes)
        if user.id == principal.user_id and (
            changes.get("is_active") is False or changes.get("role", user.role) != user.role
        ):
            raise Conflict("You cannot deactivate yourself or change your own role")
        # Only an active owner counts: demoting a deactivated one leaves the others as they are.
        losing_owner = (
            user.role == "owner"
            and user.is_active
            and (changes.get("role", "owner") != "owner" or changes.get("is_active") is False)
        )
        if losing_owner:
            owners = await session.exec(
                select(func.count()).where(
                    User.organization_id == ctx.org_id, User.role == "owner", User.is_active
                )
            )
            if owners.one() <= 1:
                raise Conflict("The organization must keep at least one active owner")
        changes = omit_nulls(changes)
        deactivating = changes.get("is_active") is False
        # A reset password or a deactivation ends every session the user has: their
        # tokens are refused from this commit on, reactivated or not.
        if "password_hash" in changes or deactivating:
            assert user.id is not None
            epoch = await accounts.end_sessions(session, user.id)
            if deactivating:
                stopped_keys = await accounts.keys_owned_by(session, user.id)
        if apply_changes(user, changes) or epoch is not None:
            session.add(user)
            await session.commit()
    if epoch is not None:
        await _revoked(ctx, user, epoch, stopped_keys)
    return UserPublic.model_validate(user)


async def _revoked(ctx: Context[Any, Any], user: User, epoch: int, keys: list[int]) -> None:
    assert user.id is not None
    # The ORM's copy predates the bump, which was made in SQL.
    user.session_epoch = epoch
    if ctx.state.live is not None:
        # Tokens already stop working; open WebSockets must stop receiving too.
        await ctx.state.live.revoke_user(ctx.org_id, user.id, epoch, keys)


@api.patch(
    "/api/users/{user_id:int}",
    summary="Update a user (admin)",
    body=UserPatch,
    response=UserPublic,
    role="admin",
    errors=(409,),
)
async def update_user(ctx: Context[None, UserPatch]) -> UserPublic:
    return await _change_user(ctx, ctx.body.model_dump(include=ctx.body_fields))


@api.post(
    "/api/users/{user_id:int}/deactivate",
    summary="Deactivate a user: their tokens stop working at once (admin)",
    response=UserPublic,
    role="admin",
    errors=(409,),
)
async def deactivate_user(ctx: Context[None, None]) -> UserPublic:
    return await _change_user(ctx, {"is_active": False})


@api.post(
    "/api/users/{user_id:int}/logout-all",
    summary="Sign a user out everywhere: their tokens and sockets stop; they can sign in "
    "again (admin)",
    role="admin",
    status=204,
)
async def logout_user_everywhere(ctx: Context[None, None]) -> None:
    async with ctx.state.db.session(write=True) as session:
        user = await get_owned(session, User, ctx.path["user_id"], ctx.org_id)
        _require_owner_for(ctx.principal, user, {})
        assert user.id is not None
        epoch = await accounts.end_sessions(session, user.id)
        await session.commit()
    await _revoked(ctx, user, epoch, [])
