from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from ..errors import Conflict
from ..models import Channel, Conversation
from ..schemas.channels import ChannelCreate, ChannelPatch, ChannelPublic
from ..schemas.common import Page, PageQuery
from ..services.channels import create_channel as connect_channel
from ..services.channels import parse_settings, routing_conflict
from ..services.webhooks.callbacks import check_callback
from ..views import channel_public
from ..web.endpoint import Context, Endpoints
from .common import apply_changes, count, get_owned, omit_nulls

api = Endpoints("channels")


@api.get(
    "/api/channels",
    summary="List channels (admin)",
    query=PageQuery,
    response=Page[ChannelPublic],
    role="admin",
)
async def list_channels(ctx: Context[PageQuery, None]) -> Page[ChannelPublic]:
    q = ctx.query
    stmt = select(Channel).where(Channel.organization_id == ctx.org_id)
    async with ctx.state.db.session() as session:
        total = await count(session, stmt)
        rows = await session.exec(stmt.order_by(col(Channel.id)).limit(q.limit).offset(q.offset))
        items = [channel_public(r) for r in rows]
    return Page.of(items, total=total, limit=q.limit, offset=q.offset)


@api.post(
    "/api/channels",
    summary="Connect a channel (admin)",
    body=ChannelCreate,
    response=ChannelPublic,
    status=201,
    role="admin",
    errors=(409,),
)
async def create_channel(ctx: Context[None, ChannelCreate]) -> ChannelPublic:
    body = ctx.body
    settings = parse_settings(body.kind, body.settings)
    await check_callback(settings, ctx.state.settings.webhook_allow_private)
    channel = await connect_channel(
        ctx.state.db,
        ctx.state.secrets,
        ctx.org_id,
        kind=body.kind,
        name=body.name,
        settings=settings,
        is_active=body.is_active,
    )
    ctx.state.channels.invalidate()
    return channel_public(channel)


@api.get(
    "/api/channels/{channel_id:int}",
    summary="Get a channel (admin)",
    response=ChannelPublic,
    role="admin",
)
async def get_channel(ctx: Context[None, None]) -> ChannelPublic:
    async with ctx.state.db.session() as session:
        channel = await get_owned(session, Channel, ctx.path["channel_id"], ctx.org_id)
    return channel_public(channel)


@api.patch(
    "/api/channels/{channel_id:int}",
    summary="Update a channel; settings merge, omitted secrets are kept (admin)",
    body=ChannelPatch,
    response=ChannelPublic,
    role="admin",
    errors=(409,),
)
async def update_channel(ctx: Context[None, ChannelPatch]) -> ChannelPublic:
    changes = ctx.body.model_dump(include=ctx.body_fields, exclude={"settings"})
    async with ctx.state.db.session() as session:
        channel = await get_owned(session, Channel, ctx.path["channel_id"], ctx.org_id)
        if ctx.body.settings is not None:
            current = ctx.state.secrets.decrypted(channel)
            parsed = parse_settings(channel.kind, {**current, **ctx.body.settings})
            await check_callback(parsed, ctx.state.settings.webhook_allow_private)
            if parsed.stored() != current:
                # Every secret encrypted anew, under the newest key.
                changes["settings"] = ctx.state.secrets.seal(parsed)
            changes["routing_key"] = parsed.routing_key()
        changes = omit_nulls(changes)
        if apply_changes(channel, changes):
            # Read now: after a failed commit the row's attributes can no longer be loaded.
            conflict = routing_conflict(channel.kind)
            session.add(channel)
            try:
                await session.commit()
            except IntegrityError:
                raise conflict from None
            # Webhooks of this process see the change (a deactivation above all) at once.
            ctx.state.channels.invalidate()
    return channel_public(channel)


@api.delete(
    "/api/channels/{channel_id:int}",
    summary="Delete a channel without conversations; deactivate one that has some (admin)",
    role="admin",
    errors=(409,),
)
async def delete_channel(ctx: Context[None, None]) -> None:
    async with ctx.state.db.session() as session:
        channel = await get_owned(session, Channel, ctx.path["channel_id"], ctx.org_id)
        used = await session.exec(
            select(Conversation.id).where(Conversation.channel_id == channel.id).limit(1)
        )
        if used.first() is not None:
            raise Conflict(
                "This channel has conversations; deactivate it instead (is_active: false)"
            )
        await session.delete(channel)
        await session.commit()
    ctx.state.channels.invalidate()
