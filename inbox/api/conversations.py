from __future__ import annotations

from typing import Any

from sqlalchemy import tuple_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from ..errors import field_error
from ..events import EventType
from ..models import Conversation, Message, User
from ..schemas.common import Page
from ..schemas.conversations import (
    ConversationPatch,
    ConversationPublic,
    ConversationQuery,
    CursorPagination,
    MessagePage,
    MessagePublic,
    MessageQuery,
)
from ..views import conversation_public, conversations_with_refs, load_conversation
from ..web.endpoint import Context, Endpoints
from .common import apply_changes, count, dialect_of, get_owned, json_array_contains

api = Endpoints("conversations")


@api.get(
    "/api/conversations",
    summary="List conversations, newest activity first",
    query=ConversationQuery,
    response=Page[ConversationPublic],
)
async def list_conversations(ctx: Context[ConversationQuery, None]) -> Page[ConversationPublic]:
    q = ctx.query
    stmt = conversations_with_refs().where(Conversation.organization_id == ctx.org_id)
    if q.status:
        stmt = stmt.where(Conversation.status == q.status)
    if q.assignee == "me":
        # An API key is nobody: comparing with its missing user id would mean "unassigned".
        if ctx.principal.user_id is None:
            raise field_error("assignee", "'me' needs a user's access token, not an API key")
        stmt = stmt.where(Conversation.assignee_id == ctx.principal.user_id)
    elif q.assignee == "none":
        stmt = stmt.where(col(Conversation.assignee_id).is_(None))
    if q.assignee_id is not None:
        stmt = stmt.where(Conversation.assignee_id == q.assignee_id)
    if q.channel_id is not None:
        stmt = stmt.where(Conversation.channel_id == q.channel_id)
    if q.contact_id is not None:
        stmt = stmt.where(Conversation.contact_id == q.contact_id)
    if q.unread is True:
        stmt = stmt.where(Conversation.unread_count > 0)
    elif q.unread is False:
        stmt = stmt.where(Conversation.unread_count == 0)
    async with ctx.state.db.session() as session:
        if q.label:
            stmt = stmt.where(
                json_array_contains(dialect_of(session), Conversation.labels, q.label)
            )
        total = await count(session, stmt)
        ordered = stmt.order_by(
            col(Conversation.last_message_at).desc().nulls_last(), col(Conversation.id).desc()
        )
        rows = await session.exec(ordered.limit(q.limit).offset(q.offset))
        items = [conversation_public(*row) for row in rows]
    return Page.of(items, total=total, limit=q.limit, offset=q.offset)


@api.get(
    "/api/conversations/{conversation_id:int}",
    summary="Get a conversation",
    response=ConversationPublic,
)
async def get_conversation(ctx: Context[None, None]) -> ConversationPublic:
    async with ctx.state.db.session() as session:
        return await load_conversation(session, ctx.path["conversation_id"], ctx.org_id)


async def _change(ctx: Context[Any, Any], changes: dict[str, Any]) -> ConversationPublic:
    conversation_id = ctx.path["conversation_id"]
    async with ctx.tx() as tx:
        conv = await get_owned(tx.session, Conversation, conversation_id, ctx.org_id)
        assignee_id = changes.get("assignee_id")
        if assignee_id is not None:
            user = await tx.session.get(User, assignee_id)
            if user is None or user.organization_id != ctx.org_id or not user.is_active:
                raise field_error(
                    "assignee_id", f"no active user {assignee_id} in this organization"
                )
        if apply_changes(conv, changes):
            tx.session.add(conv)
            await tx.session.flush()
            public = await load_conversation(tx.session, conversation_id, ctx.org_id)
            tx.emit(EventType.CONVERSATION_UPDATED, public.model_dump(mode="json"))
            return public
    async with ctx.state.db.session() as session:
        return await load_conversation(session, conversation_id, ctx.org_id)


@api.patch(
    "/api/conversations/{conversation_id:int}",
    summary="Change status, assignee or labels",
    body=ConversationPatch,
    response=ConversationPublic,
)
async def update_conversation(ctx: Context[None, ConversationPatch]) -> ConversationPublic:
    changes = ctx.body.model_dump(include=ctx.body_fields)
    for name in ("status", "labels"):
        if changes.get(name, ...) is None:
            changes.pop(name)
    return await _change(ctx, changes)


@api.post(
    "/api/conversations/{conversation_id:int}/read",
    summary="Mark a conversation read (unread count to zero)",
    response=ConversationPublic,
)
async def mark_read(ctx: Context[None, None]) -> ConversationPublic:
    return await _change(ctx, {"unread_count": 0})


async def _cursor(
    session: AsyncSession, conversation_id: int, field: str, message_id: int
) -> tuple[Any, int]:
    row = (
        await session.exec(
            select(Message.ordered_at, Message.id).where(
                col(Message.id) == message_id, col(Message.conversation_id) == conversation_id
            )
        )
    ).first()
    if row is None:
        raise field_error(field, f"no message {message_id} in this conversation")
    return row[0], message_id


@api.get(
    "/api/conversations/{conversation_id:int}/messages",
    summary="Messages of a conversation in conversation order, by cursor",
    query=MessageQuery,
    response=MessagePage,
)
async def list_messages(ctx: Context[MessageQuery, None]) -> MessagePage:
    """Conversation order is the platform's timestamp (then arrival). Without a cursor: the
    latest `limit` messages, oldest first. `before`: older ones; `after`: newer ones."""
    q = ctx.query
    order_key = tuple_(col(Message.ordered_at), col(Message.id))
    async with ctx.state.db.session() as session:
        conv = await get_owned(session, Conversation, ctx.path["conversation_id"], ctx.org_id)
        assert conv.id is not None
        base = select(Message).where(col(Message.conversation_id) == conv.id)
        total = await count(session, base)
        if q.after is not None:
            stmt = base.order_by(col(Message.ordered_at).asc(), col(Message.id).asc())
            if q.after > 0:
                anchor = await _cursor(session, conv.id, "after", q.after)
                stmt = stmt.where(order_key > tuple_(*anchor))
        else:
            stmt = base.order_by(col(Message.ordered_at).desc(), col(Message.id).desc())
            if q.before is not None:
                anchor = await _cursor(session, conv.id, "before", q.before)
                stmt = stmt.where(order_key < tuple_(*anchor))
        rows = list(await session.exec(stmt.limit(q.limit + 1)))
    has_more = len(rows) > q.limit
    rows = rows[: q.limit]
    if q.after is None:
        rows.reverse()
    items = [MessagePublic.model_validate(m) for m in rows]
    return MessagePage(
        data=items,
        pagination=CursorPagination(
            total=total,
            limit=q.limit,
            has_more=has_more,
            before=items[0].id if items else None,
            after=items[-1].id if items else q.after,
        ),
    )
