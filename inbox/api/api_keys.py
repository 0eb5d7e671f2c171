from __future__ import annotations

from sqlmodel import col, select

from ..live.service import key_subject
from ..models import ApiKey
from ..schemas.auth import ApiKeyCreate, ApiKeyCreated, ApiKeyPublic
from ..schemas.common import Page, PageQuery
from ..services import accounts
from ..web.endpoint import Context, Endpoints
from .common import count, get_owned

api = Endpoints("api-keys")


@api.get(
    "/api/api-keys",
    summary="List API keys (admin)",
    query=PageQuery,
    response=Page[ApiKeyPublic],
    role="admin",
)
async def list_api_keys(ctx: Context[PageQuery, None]) -> Page[ApiKeyPublic]:
    q = ctx.query
    stmt = select(ApiKey).where(ApiKey.organization_id == ctx.org_id)
    async with ctx.state.db.session() as session:
        total = await count(session, stmt)
        rows = await session.exec(stmt.order_by(col(ApiKey.id)).limit(q.limit).offset(q.offset))
        items = [ApiKeyPublic.model_validate(r) for r in rows]
    return Page.of(items, total=total, limit=q.limit, offset=q.offset)


@api.post(
    "/api/api-keys",
    summary="Create an API key; the key is shown once (admin)",
    body=ApiKeyCreate,
    response=ApiKeyCreated,
    status=201,
    role="admin",
)
async def create_api_key(ctx: Context[None, ApiKeyCreate]) -> ApiKeyCreated:
    row, key = await accounts.create_api_key(
        ctx.state.db,
        ctx.org_id,
        name=ctx.body.name,
        role=ctx.body.role,
        created_by_id=ctx.principal.user_id,
    )
    return ApiKeyCreated(**ApiKeyPublic.model_validate(row).model_dump(), key=key)


@api.delete("/api/api-keys/{key_id:int}", summary="Revoke an API key (admin)", role="admin")
async def delete_api_key(ctx: Context[None, None]) -> None:
    async with ctx.state.db.session() as session:
        row = await get_owned(session, ApiKey, ctx.path["key_id"], ctx.org_id)
        await session.delete(row)
        await session.commit()
    ctx.state.auth.forget_key(ctx.path["key_id"])
    if ctx.state.live is not None:
        await ctx.state.live.revoke(ctx.org_id, key_subject(row.id))
