from __future__ import annotations

from typing import Any

from sqlalchemy import tuple_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from ..errors import NotFound, field_error
from ..events import EventType
from ..models import Conversation, Message, User, utcnow
from ..schemas.conversations import (
    MAX_LABELS,
    ConversationPage,
    ConversationPagination,
    ConversationPatch,
    ConversationPublic,
    ConversationQuery,
    CursorPagination,
    LabelsChange,
    MessagePage,
    MessagePublic,
    MessageQuery,
)
from ..services.outbox import UnitOfWork
from ..services.snooze import SnoozeWaker
from ..views import conversation_public, conversations_with_refs, load_conversation
from ..web.endpoint import Context, Endpoints
from .common import apply_changes, count, dialect_of, get_owned
from .conversation_search import (
    ORDER,
    after_cursor,
    decode_cursor,
    encode_cursor,
    filters,
)

api = Endpoints("conversations")


@api.get(
    "/api/conversations",
    summary="List conversations, newest activity first",
    query=ConversationQuery,
    response=ConversationPage,
    role="viewer",
)
async def list_conversations(ctx: Context[ConversationQuery, None]) -> ConversationPage:
    """Page on with `cursor` (the `pagination.next_cursor` of the page before): a
    cursor page starts right after the last row shown, however many conversations
    moved meanwhile. `offset` still works, for clients that count."""
    q = ctx.query
    if q.cursor is not None and q.offset:
        raise field_error("offset", "give either cursor or offset, not both")
    async with ctx.state.db.session() as session:
        stmt = conversations_with_refs().where(*filters(q, ctx.principal, dialect_of(session)))
        total = await count(session, stmt)
        if q.cursor is not None:
            stmt = stmt.where(after_cursor(*decode_cursor(q.cursor)))
        rows = list(await session.exec(stmt.order_by(*ORDER).limit(q.limit + 1).offset(q.offset)))
    has_more = len(rows) > q.limit
    items = [conversation_public(*row) for row in rows[: q.limit]]
    last = items[-1] if has_more else None
    return ConversationPage(
        data=items,
        pagination=ConversationPagination(
            total=total,
            limit=q.limit,
            offset=q.offset,
            has_more=has_more,
            next_cursor=encode_cursor(last.last_message_at, last.id) if last else None,
        ),
    )


@api.get(
    "/api/conversations/{conversation_id:int}",
    summary="Get a conversation",
    response=ConversationPublic,
    role="viewer",
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
        if "status" in changes:
            # Resolution time runs to the latest close; closing twice moves nothing.
            if changes["status"] != "closed":
                changes["closed_at"] = changes["resolution_seconds"] = None
            elif conv.status != "closed":
                closed = changes["closed_at"] = utcnow()
                changes["resolution_seconds"] = (closed - conv.created_at).total_seconds()
        return await _apply(tx, conv, changes)


async def _apply(
    tx: UnitOfWork, conv: Conversation, changes: dict[str, Any]
) -> ConversationPublic:
    """Write ``changes`` and tell every console, once, if anything changed."""
    assert conv.id is not None
    if apply_changes(conv, changes):
        tx.session.add(conv)
        await tx.session.flush()
        public = await load_conversation(tx.session, conv.id, conv.organization_id)
        tx.emit(EventType.CONVERSATION_UPDATED, public.model_dump(mode="json"))
        return public
    return await load_conversation(tx.session, conv.id, conv.organization_id)


@api.patch(
    "/api/conversations/{conversation_id:int}",
    summary="Change status, assignee or labels; snooze",
    body=ConversationPatch,
    response=ConversationPublic,
)
async def update_conversation(ctx: Context[None, ConversationPatch]) -> ConversationPublic:
    """Status `snoozed` takes `snoozed_until` (in the future, within a year): the
    conversation reopens by itself then, or when the customer writes. Any other status
    ends the snooze."""
    changes = ctx.body.model_dump(include=ctx.body_fields)
    for name in ("status", "labels", "snoozed_until"):
        if changes.get(name, ...) is None:
            changes.pop(name)
    status = changes.get("status")
    if status == "snoozed" and "snoozed_until" not in changes:
        raise field_error("snoozed_until", "status 'snoozed' needs the time it reopens at")
    if "snoozed_until" in changes and status != "snoozed":
        raise field_error("snoozed_until", "goes only with status 'snoozed'")
    if status is not None and status != "snoozed":
        changes["snoozed_until"] = None
    public = await _change(ctx, changes)
    if status == "snoozed":
        # This process's waker (the app's lifespan starts one) sleeps until the
        # earliest snooze it knew of; this one may come first.
        waker = getattr(ctx.request.app.state, "snooze_waker", None)
        if isinstance(waker, SnoozeWaker):
            waker.wake()
    return public


@api.post(
    "/api/conversations/{conversation_id:int}/labels",
    summary="Add and remove labels, leaving the others as they are",
    body=LabelsChange,
    response=ConversationPublic,
)
async def change_labels(ctx: Context[None, LabelsChange]) -> ConversationPublic:
    """Two agents labelling at once both keep their labels: the change applies to the
    labels as they are when it is made, not as a client last saw them."""
    add, remove = list(dict.fromkeys(ctx.body.add)), set(ctx.body.remove)
    both = sorted(remove.intersection(add))
    if both:
        raise field_error("remove", f"{', '.join(both)}: both added and removed")
    conversation_id = ctx.path["conversation_id"]
    async with ctx.tx() as tx:
        conv = (
            await tx.session.exec(
                select(Conversation)
                .where(
                    col(Conversation.id) == conversation_id,
                    col(Conversation.organization_id) == ctx.org_id,
                )
                .with_for_update()
                .execution_options(populate_existing=True)
            )
        ).first()
        if conv is None:
            raise NotFound(f"Conversation {conversation_id} not found")
        labels = [label for label in conv.labels if label not in remove]
        labels += [label for label in add if label not in labels]
        if len(labels) > MAX_LABELS:
            raise field_error(
                "add", f"a conversation has at most {MAX_LABELS} labels; this makes {len(labels)}"
            )
        return await _apply(tx, conv, {"labels": labels})


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
    role="viewer",
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
