from __future__ import annotations

import logging
from typing import Any

from redis.exceptions import RedisError
from sqlmodel import col, select

from ..errors import AuthorizationFailed, ServiceUnavailable
from ..live import Live
from ..models import User
from ..schemas.team import PresenceChange, Team, TeamMember
from ..web.endpoint import Context, Endpoints

api = Endpoints("team")

log = logging.getLogger("inbox.team")


def _live(ctx: Context[Any, Any]) -> Live:
    if ctx.state.live is None:
        raise ServiceUnavailable("Realtime is not running in this process")
    return ctx.state.live


@api.get(
    "/api/team",
    summary="The organization's active users, with who is online; no e-mail addresses",
    response=Team,
)
async def list_team(ctx: Context[None, None]) -> Team:
    """Every member may read it (to assign, and to see who is around): names, roles and
    presence only. `online`: a console of theirs is connected; `away`: connected, and
    they said they are away; `offline`: no console connected."""
    async with ctx.state.db.session() as session:
        users = list(
            await session.exec(
                select(User)
                .where(col(User.organization_id) == ctx.org_id, col(User.is_active))
                .order_by(col(User.name), col(User.id))
            )
        )
    try:
        statuses = await _live(ctx).statuses(ctx.org_id)
    except RedisError:
        # Presence lives in Redis; the team is still worth listing without it.
        log.warning("presence unavailable: the team is listed as offline")
        statuses = {}
    return Team(
        data=[
            TeamMember(
                id=u.id,
                name=u.name,
                role=u.role,
                presence=statuses.get(u.id, "offline"),
            )
            for u in users
            if u.id is not None
        ]
    )


@api.post(
    "/api/presence",
    summary="Say you are online or away; every console sees agent.status",
    body=PresenceChange,
    status=204,
)
async def set_presence(ctx: Context[None, PresenceChange]) -> None:
    """A user's own status while connected; it lasts until they change it or their
    last console disconnects. An API key is nobody and has no presence."""
    user_id = ctx.principal.user_id
    if user_id is None:
        raise AuthorizationFailed("Presence is a signed-in user's; an API key has none")
    await _live(ctx).set_status(ctx.org_id, user_id, ctx.body.status)
