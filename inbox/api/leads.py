from __future__ import annotations

from typing import Any

from sqlmodel import col, select

from ..errors import field_error
from ..events import EventType
from ..models import Contact, Lead, utcnow
from ..schemas.common import Page
from ..schemas.leads import LeadCreate, LeadPatch, LeadPublic, LeadQuery, LeadReplace
from ..services.leads import add_lead
from ..services.outbox import UnitOfWork
from ..views import contact_data, lead_data
from ..web.endpoint import Context, Endpoints
from .common import apply_changes, count, get_owned, omit_nulls, search_any

api = Endpoints("leads")


async def _check_contact(tx: UnitOfWork, contact_id: int | None) -> None:
    if contact_id is not None:
        await get_owned(tx.session, Contact, contact_id, tx.organization_id)


@api.get("/api/leads", summary="List leads", query=LeadQuery, response=Page[LeadPublic])
async def list_leads(ctx: Context[LeadQuery, None]) -> Page[LeadPublic]:
    q = ctx.query
    stmt = select(Lead).where(Lead.organization_id == ctx.org_id)
    if q.status:
        stmt = stmt.where(Lead.status == q.status)
    if q.source:
        stmt = stmt.where(Lead.source == q.source)
    if q.contact_id is not None:
        stmt = stmt.where(Lead.contact_id == q.contact_id)
    if q.q:
        stmt = stmt.where(search_any(q.q, Lead.name, Lead.email, Lead.phone, Lead.company))
    column = col(getattr(Lead, q.sort))
    order = column.asc() if q.order == "asc" else column.desc()
    tiebreak = col(Lead.id).asc() if q.order == "asc" else col(Lead.id).desc()
    async with ctx.state.db.session() as session:
        total = await count(session, stmt)
        rows = await session.exec(stmt.order_by(order, tiebreak).limit(q.limit).offset(q.offset))
        items = [LeadPublic.model_validate(r) for r in rows]
    return Page.of(items, total=total, limit=q.limit, offset=q.offset)


# 404: a contact_id that names no contact of the organization.
@api.post(
    "/api/leads",
    summary="Create a lead",
    body=LeadCreate,
    response=LeadPublic,
    status=201,
    errors=(404,),
)
async def create_lead(ctx: Context[None, LeadCreate]) -> LeadPublic:
    async with ctx.tx() as tx:
        await _check_contact(tx, ctx.body.contact_id)
        lead = await add_lead(tx, **ctx.body.model_dump())
    return LeadPublic.model_validate(lead)


@api.get("/api/leads/{lead_id:int}", summary="Get a lead", response=LeadPublic)
async def get_lead(ctx: Context[None, None]) -> LeadPublic:
    async with ctx.state.db.session() as session:
        lead = await get_owned(session, Lead, ctx.path["lead_id"], ctx.org_id)
    return LeadPublic.model_validate(lead)


async def _update(ctx: Context[Any, Any], changes: dict[str, Any]) -> LeadPublic:
    async with ctx.tx() as tx:
        lead = await get_owned(tx.session, Lead, ctx.path["lead_id"], ctx.org_id)
        if "contact_id" in changes:
            await _check_contact(tx, changes["contact_id"])
        if changes.get("status") == "converted" and lead.converted_at is None:
            changes["converted_at"] = utcnow()
        if apply_changes(lead, changes):
            if not lead.name and not lead.email:
                raise field_error("name", "a lead needs a name or an email")
            tx.session.add(lead)
            await tx.session.flush()
            tx.emit(EventType.LEAD_UPDATED, lead_data(lead))
    return LeadPublic.model_validate(lead)


@api.put(
    "/api/leads/{lead_id:int}", summary="Replace a lead", body=LeadReplace, response=LeadPublic
)
async def replace_lead(ctx: Context[None, LeadReplace]) -> LeadPublic:
    return await _update(ctx, ctx.body.model_dump())


@api.patch("/api/leads/{lead_id:int}", summary="Update a lead", body=LeadPatch, response=LeadPublic)
async def update_lead(ctx: Context[None, LeadPatch]) -> LeadPublic:
    changes = ctx.body.model_dump(include=ctx.body_fields)
    # A lead always has a status, as a contact does.
    return await _update(ctx, omit_nulls(changes, ("status",)))


@api.delete("/api/leads/{lead_id:int}", summary="Delete a lead")
async def delete_lead(ctx: Context[None, None]) -> None:
    async with ctx.tx() as tx:
        lead = await get_owned(tx.session, Lead, ctx.path["lead_id"], ctx.org_id)
        await tx.session.delete(lead)
        tx.emit(EventType.LEAD_DELETED, {"id": lead.id})


@api.post(
    "/api/leads/{lead_id:int}/convert",
    summary="Convert a lead: mark it converted and make its contact a customer",
    response=LeadPublic,
)
async def convert_lead(ctx: Context[None, None]) -> LeadPublic:
    async with ctx.tx() as tx:
        lead = await get_owned(tx.session, Lead, ctx.path["lead_id"], ctx.org_id)
        now = utcnow()
        contact = None
        if lead.contact_id is not None:
            contact = await tx.session.get(Contact, lead.contact_id)
        if contact is None:
            contact = Contact(
                organization_id=ctx.org_id,
                name=lead.name,
                email=lead.email,
                phone=lead.phone,
                company=lead.company,
                status="customer",
            )
            tx.session.add(contact)
            await tx.session.flush()
            tx.emit(EventType.CONTACT_CREATED, contact_data(contact))
        elif apply_changes(contact, {"status": "customer"}):
            tx.session.add(contact)
            await tx.session.flush()
            tx.emit(EventType.CONTACT_UPDATED, contact_data(contact))
        apply_changes(
            lead,
            {
                "status": "converted",
                "contact_id": contact.id,
                "converted_at": lead.converted_at or now,
            },
        )
        tx.session.add(lead)
        await tx.session.flush()
        tx.emit(EventType.LEAD_UPDATED, lead_data(lead))
    return LeadPublic.model_validate(lead)
