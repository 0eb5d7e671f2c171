from __future__ import annotations

from sqlmodel import col, select

from ..models import Channel, MessageTemplate
from ..schemas.common import Page
from ..schemas.templates import TemplatePublic, TemplateQuery
from ..web.endpoint import Context, Endpoints
from .common import get_owned

api = Endpoints("channels")


@api.get(
    "/api/channels/{channel_id:int}/templates",
    summary="The WhatsApp message templates of a channel, as last synced",
    query=TemplateQuery,
    response=Page[TemplatePublic],
)
async def list_templates(ctx: Context[TemplateQuery, None]) -> Page[TemplatePublic]:
    """Read from the Business Account by `inbox channels sync-templates` and kept current
    by its template status webhooks. `parameters` says what a message must give for
    each: the header's and body's values (`count`, and their `names` when the template
    takes named parameters) and one value per button listed. Only `APPROVED` ones can
    be sent. Other channels have none."""
    async with ctx.state.db.session() as session:
        channel = await get_owned(session, Channel, ctx.path["channel_id"], ctx.org_id)
        stmt = select(MessageTemplate).where(col(MessageTemplate.channel_id) == channel.id)
        if ctx.query.status is not None:
            stmt = stmt.where(col(MessageTemplate.status) == ctx.query.status.upper())
        rows = list(
            await session.exec(
                stmt.order_by(col(MessageTemplate.name), col(MessageTemplate.language))
            )
        )
    items = [TemplatePublic.model_validate(row) for row in rows]
    return Page.of(items, total=len(items), limit=len(items), offset=0)
