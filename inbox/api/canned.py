"""Canned responses: every member reads them, admins write them, every console hears of
each change."""

from __future__ import annotations

from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from ..errors import Conflict, field_error
from ..events import EventType
from ..models.canned import CannedResponse
from ..schemas.canned import (
    CannedResponseCreate,
    CannedResponsePatch,
    CannedResponsePublic,
    CannedResponseQuery,
)
from ..schemas.common import Page
from ..schemas.realtime import Deleted
from ..services.outbox import UnitOfWork
from ..web.endpoint import Context, Endpoints
from .common import apply_changes, count, get_owned, search_any

api = Endpoints("canned-responses")


def _public(row: CannedResponse) -> CannedResponsePublic:
    return CannedResponsePublic.model_validate(row)


def _taken(short_code: str) -> Conflict:
    return Conflict(
        f"A canned response with short code '{short_code}' exists already",
        {"short_code": short_code},
    )


async def _check_free(tx: UnitOfWork, short_code: str, own_id: int | None = None) -> None:
    found = (
        await tx.session.exec(
            select(CannedResponse.id).where(
                col(CannedResponse.organization_id) == tx.organization_id,
                col(CannedResponse.short_code) == short_code,
            )
        )
    ).first()
    if found is not None and found != own_id:
        raise _taken(short_code)


async def _flush(tx: UnitOfWork, row: CannedResponse) -> None:
    tx.session.add(row)
    try:
        await tx.session.flush()
    except IntegrityError:
        # Two admins saving the same code at once: the unique index decides.
        raise _taken(row.short_code) from None


@api.get(
    "/api/canned-responses",
    summary="List canned responses by short code",
    query=CannedResponseQuery,
    response=Page[CannedResponsePublic],
)
async def list_canned(ctx: Context[CannedResponseQuery, None]) -> Page[CannedResponsePublic]:
    q = ctx.query
    stmt = select(CannedResponse).where(col(CannedResponse.organization_id) == ctx.org_id)
    if q.q and q.q.strip():
        stmt = stmt.where(search_any(q.q, CannedResponse.short_code, CannedResponse.content))
    async with ctx.state.db.session() as session:
        total = await count(session, stmt)
        rows = await session.exec(
            stmt.order_by(col(CannedResponse.short_code).asc()).limit(q.limit).offset(q.offset)
        )
        items = [_public(r) for r in rows]
    return Page.of(items, total=total, limit=q.limit, offset=q.offset)


@api.post(
    "/api/canned-responses",
    summary="Create a canned response (admin)",
    body=CannedResponseCreate,
    response=CannedResponsePublic,
    status=201,
    role="admin",
    errors=(409,),
)
async def create_canned(ctx: Context[None, CannedResponseCreate]) -> CannedResponsePublic:
    async with ctx.tx() as tx:
        await _check_free(tx, ctx.body.short_code)
        row = CannedResponse(
            organization_id=ctx.org_id,
            short_code=ctx.body.short_code,
            content=ctx.body.content,
            created_by_id=ctx.principal.user_id,
        )
        await _flush(tx, row)
        public = _public(row)
        tx.emit(EventType.CANNED_RESPONSE_CREATED, public.model_dump(mode="json"))
    return public


@api.get(
    "/api/canned-responses/{canned_id:int}",
    summary="Get a canned response",
    response=CannedResponsePublic,
)
async def get_canned(ctx: Context[None, None]) -> CannedResponsePublic:
    async with ctx.state.db.session() as session:
        row = await get_owned(session, CannedResponse, ctx.path["canned_id"], ctx.org_id)
    return _public(row)


@api.patch(
    "/api/canned-responses/{canned_id:int}",
    summary="Change a canned response's short code or text (admin)",
    body=CannedResponsePatch,
    response=CannedResponsePublic,
    role="admin",
    errors=(409,),
)
async def update_canned(ctx: Context[None, CannedResponsePatch]) -> CannedResponsePublic:
    changes: dict[str, Any] = ctx.body.model_dump(include=ctx.body_fields)
    for name, value in changes.items():
        if value is None:
            raise field_error(name, "cannot be null; leave it out to keep it as it is")
    async with ctx.tx() as tx:
        row = await get_owned(tx.session, CannedResponse, ctx.path["canned_id"], ctx.org_id)
        if "short_code" in changes:
            await _check_free(tx, changes["short_code"], row.id)
        if apply_changes(row, changes):
            await _flush(tx, row)
            tx.emit(EventType.CANNED_RESPONSE_UPDATED, _public(row).model_dump(mode="json"))
        return _public(row)


@api.delete(
    "/api/canned-responses/{canned_id:int}",
    summary="Delete a canned response (admin)",
    role="admin",
)
async def delete_canned(ctx: Context[None, None]) -> None:
    async with ctx.tx() as tx:
        row = await get_owned(tx.session, CannedResponse, ctx.path["canned_id"], ctx.org_id)
        await tx.session.delete(row)
        assert row.id is not None
        tx.emit(EventType.CANNED_RESPONSE_DELETED, Deleted(id=row.id).model_dump(mode="json"))
