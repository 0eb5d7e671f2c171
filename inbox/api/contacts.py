from __future__ import annotations

from typing import Any

from sqlmodel import col, select

from ..events import EventType
from ..models import Channel, Contact, ContactIdentity, Conversation, Lead
from ..schemas.common import Page
from ..schemas.contacts import (
    ContactConversation,
    ContactCreate,
    ContactDetail,
    ContactPatch,
    ContactPublic,
    ContactQuery,
    IdentityPublic,
)
from ..schemas.leads import LeadPublic
from ..views import contact_data
from ..web.endpoint import Context, Endpoints
from .common import (
    apply_changes,
    count,
    dialect_of,
    get_owned,
    json_array_contains,
    omit_nulls,
    search_any,
)

api = Endpoints("contacts")


async def _list(ctx: Context[ContactQuery, None], status: str | None) -> Page[ContactPublic]:
    q = ctx.query
    stmt = select(Contact).where(Contact.organization_id == ctx.org_id)
    if status:
        stmt = stmt.where(Contact.status == status)
    if q.search:
        stmt = stmt.where(
            search_any(q.search, Contact.name, Contact.email, Contact.phone, Contact.company)
        )
    column = col(getattr(Contact, q.sort))
    order = column.asc() if q.order == "asc" else column.desc()
    tiebreak = col(Contact.id).asc() if q.order == "asc" else col(Contact.id).desc()
    async with ctx.state.db.session() as session:
        for tag in q.tag_list():
            stmt = stmt.where(json_array_contains(dialect_of(session), Contact.tags, tag))
        total = await count(session, stmt)
        rows = await session.exec(stmt.order_by(order, tiebreak).limit(q.limit).offset(q.offset))
        items = [ContactPublic.model_validate(r) for r in rows]
    return Page.of(items, total=total, limit=q.limit, offset=q.offset)


@api.get(
    "/api/contacts",
    summary="List contacts",
    query=ContactQuery,
    response=Page[ContactPublic],
    role="viewer",
)
async def list_contacts(ctx: Context[ContactQuery, None]) -> Page[ContactPublic]:
    return await _list(ctx, ctx.query.status)


@api.get(
    "/api/customers",
    summary="List customers: contacts whose status is customer",
    query=ContactQuery,
    response=Page[ContactPublic],
    role="viewer",
)
async def list_customers(ctx: Context[ContactQuery, None]) -> Page[ContactPublic]:
    return await _list(ctx, "customer")


@api.post(
    "/api/contacts",
    summary="Create a contact",
    body=ContactCreate,
    response=ContactPublic,
    status=201,
)
async def create_contact(ctx: Context[None, ContactCreate]) -> ContactPublic:
    async with ctx.tx() as tx:
        contact = Contact(organization_id=ctx.org_id, **ctx.body.model_dump())
        tx.session.add(contact)
        await tx.session.flush()
        tx.emit(EventType.CONTACT_CREATED, contact_data(contact))
    return ContactPublic.model_validate(contact)


@api.get(
    "/api/contacts/{contact_id:int}",
    summary="Get a contact with its identities, leads and conversations across channels",
    response=ContactDetail,
    role="viewer",
)
async def get_contact(ctx: Context[None, None]) -> ContactDetail:
    async with ctx.state.db.session() as session:
        contact = await get_owned(session, Contact, ctx.path["contact_id"], ctx.org_id)
        identities = await session.exec(
            select(ContactIdentity)
            .where(ContactIdentity.contact_id == contact.id)
            .order_by(col(ContactIdentity.id))
        )
        leads = await session.exec(
            select(Lead).where(Lead.contact_id == contact.id).order_by(col(Lead.id))
        )
        conversations = await session.exec(
            select(Conversation, Channel.kind)
            .join(Channel, col(Channel.id) == Conversation.channel_id)
            .where(Conversation.contact_id == contact.id)
            .order_by(col(Conversation.last_message_at).desc(), col(Conversation.id).desc())
        )
        return ContactDetail(
            **ContactPublic.model_validate(contact).model_dump(),
            identities=[IdentityPublic.model_validate(i) for i in identities],
            leads=[LeadPublic.model_validate(lead) for lead in leads],
            conversations=[
                ContactConversation(
                    id=conv.id,
                    channel_id=conv.channel_id,
                    channel_kind=kind,
                    status=conv.status,
                    unread_count=conv.unread_count,
                    last_message_at=conv.last_message_at,
                    last_message_preview=conv.last_message_preview,
                )
                for conv, kind in conversations
            ],
        )


async def _update(ctx: Context[Any, Any], changes: dict[str, Any]) -> ContactPublic:
    async with ctx.tx() as tx:
        contact = await get_owned(tx.session, Contact, ctx.path["contact_id"], ctx.org_id)
        if apply_changes(contact, changes):
            tx.session.add(contact)
            await tx.session.flush()
            tx.emit(EventType.CONTACT_UPDATED, contact_data(contact))
    return ContactPublic.model_validate(contact)


@api.put(
    "/api/contacts/{contact_id:int}",
    summary="Replace a contact",
    body=ContactCreate,
    response=ContactPublic,
)
async def replace_contact(ctx: Context[None, ContactCreate]) -> ContactPublic:
    return await _update(ctx, ctx.body.model_dump())


@api.patch(
    "/api/contacts/{contact_id:int}",
    summary="Update a contact",
    body=ContactPatch,
    response=ContactPublic,
)
async def update_contact(ctx: Context[None, ContactPatch]) -> ContactPublic:
    changes = ctx.body.model_dump(include=ctx.body_fields)
    # Lists and maps cannot be null, nor can a status.
    return await _update(ctx, omit_nulls(changes, ("tags", "custom_fields", "status")))


@api.delete(
    "/api/contacts/{contact_id:int}",
    summary="Delete a contact with its conversations and messages; its leads are kept",
)
async def delete_contact(ctx: Context[None, None]) -> None:
    async with ctx.tx() as tx:
        contact = await get_owned(tx.session, Contact, ctx.path["contact_id"], ctx.org_id)
        await tx.session.delete(contact)
        tx.emit(EventType.CONTACT_DELETED, {"id": contact.id})
