from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.orm import aliased
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from ..auth import parse_scopes, role_at_least
from ..errors import field_error
from ..models import ApiKey, User
from ..schemas.auth import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyPatch,
    ApiKeyPublic,
    ApiKeyStatus,
    ScopeName,
)
from ..schemas.common import Page, PageQuery
from ..services import accounts
from ..web.endpoint import Context, Endpoints
from .common import count, get_owned

api = Endpoints("api-keys")

Owner = aliased(User)

NOT_AN_OWNER = "must be an active admin or owner of this organization"


def key_public(row: ApiKey, owner_active: bool | None) -> ApiKeyPublic:
    status: ApiKeyStatus = "active"
    if row.owner_id is not None and not owner_active:
        status = "suspended"
    elif row.expires_at is not None and row.expires_at <= datetime.now(UTC):
        status = "expired"
    scopes: list[ScopeName] = [s for s in ("api", "ingest") if s in parse_scopes(row.scopes)]
    assert row.id is not None
    return ApiKeyPublic(
        id=row.id,
        name=row.name,
        role=row.role,
        prefix=row.prefix,
        scopes=scopes,
        created_at=row.created_at,
        created_by_id=row.created_by_id,
        owner_id=row.owner_id,
        expires_at=row.expires_at,
        last_used_at=row.last_used_at,
        status=status,
    )


async def _owner_active(session: AsyncSession, row: ApiKey) -> bool | None:
    if row.owner_id is None:
        return None
    owner = await session.get(User, row.owner_id)
    return owner is not None and owner.is_active


@api.get(
    "/api/api-keys",
    summary="List API keys, with their scopes, owner, expiry, last use and status (admin)",
    query=PageQuery,
    response=Page[ApiKeyPublic],
    role="admin",
)
async def list_api_keys(ctx: Context[PageQuery, None]) -> Page[ApiKeyPublic]:
    q = ctx.query
    stmt = select(ApiKey).where(ApiKey.organization_id == ctx.org_id)
    listed = (
        select(ApiKey, col(Owner.is_active))
        .outerjoin(Owner, col(Owner.id) == col(ApiKey.owner_id))
        .where(ApiKey.organization_id == ctx.org_id)
        .order_by(col(ApiKey.id))
        .limit(q.limit)
        .offset(q.offset)
    )
    async with ctx.state.db.session() as session:
        total = await count(session, stmt)
        rows = await session.exec(listed)
        items = [key_public(row, owner_active) for row, owner_active in rows]
    return Page.of(items, total=total, limit=q.limit, offset=q.offset)


@api.post(
    "/api/api-keys",
    summary="Create an API key; the key is shown once. It acts for its creator and stops "
    "while they are deactivated (admin)",
    body=ApiKeyCreate,
    response=ApiKeyCreated,
    status=201,
    role="admin",
)
async def create_api_key(ctx: Context[None, ApiKeyCreate]) -> ApiKeyCreated:
    body = ctx.body
    if body.expires_at is not None and body.expires_at <= datetime.now(UTC):
        raise field_error("expires_at", "must be in the future")
    principal = ctx.principal
    row, key = await accounts.create_api_key(
        ctx.state.db,
        ctx.org_id,
        name=body.name,
        role=body.role,
        scopes=body.scopes,
        expires_at=body.expires_at,
        # A key made with another key acts for that key's owner: a key cannot outlive,
        # through a copy of itself, the deactivation of the user behind it.
        created_by_id=principal.user_id if principal.user else principal.owner_id,
    )
    public = key_public(row, owner_active=True)
    return ApiKeyCreated(**public.model_dump(), key=key)


@api.patch(
    "/api/api-keys/{key_id:int}",
    summary="Rename an API key or transfer it to another active admin or owner (admin)",
    body=ApiKeyPatch,
    response=ApiKeyPublic,
    role="admin",
)
async def update_api_key(ctx: Context[None, ApiKeyPatch]) -> ApiKeyPublic:
    changes = ctx.body.model_dump(include=ctx.body_fields)
    if "name" in changes and changes["name"] is None:
        raise field_error("name", "cannot be null")
    if "owner_id" in changes and changes["owner_id"] is None:
        raise field_error("owner_id", "a key acts for a user: name an active admin or owner")
    async with ctx.state.db.session(write=True) as session:
        row = await get_owned(session, ApiKey, ctx.path["key_id"], ctx.org_id)
        if "owner_id" in changes:
            owner = await session.get(User, changes["owner_id"])
            if (
                owner is None
                or owner.organization_id != ctx.org_id
                or not owner.is_active
                or not role_at_least(owner.role, "admin")
            ):
                raise field_error("owner_id", NOT_AN_OWNER)
            row.owner_id = owner.id
        if "name" in changes:
            row.name = changes["name"]
        session.add(row)
        await session.commit()
        public = key_public(row, await _owner_active(session, row))
    if "owner_id" in changes:
        # No process remembers a refused key, so a suspended one works again at once
        # everywhere; a later deactivation names the keys its user owns by then.
        ctx.state.auth.forget_key(ctx.path["key_id"])
    return public


@api.delete("/api/api-keys/{key_id:int}", summary="Revoke an API key (admin)", role="admin")
async def delete_api_key(ctx: Context[None, None]) -> None:
    async with ctx.state.db.session() as session:
        row = await get_owned(session, ApiKey, ctx.path["key_id"], ctx.org_id)
        await session.delete(row)
        await session.commit()
    ctx.state.auth.forget_key(ctx.path["key_id"])
    if ctx.state.live is not None:
        await ctx.state.live.revoke_key(ctx.org_id, ctx.path["key_id"])
