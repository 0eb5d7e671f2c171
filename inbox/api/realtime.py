from __future__ import annotations

from ..errors import ServiceUnavailable
from ..live import Live
from ..schemas.realtime import MetricsSnapshot, TicketResponse
from ..web.endpoint import Context, Endpoints

api = Endpoints("realtime")


def _live(ctx: Context[None, None]) -> Live:
    if ctx.state.live is None:
        raise ServiceUnavailable("Realtime is not running in this process")
    return ctx.state.live


@api.post(
    "/api/realtime/tickets",
    summary="A single-use ticket to open GET /ws?ticket=... from a browser: valid 30 s (less "
    "when the caller's credential expires sooner); the socket closes when the credential "
    "expires or is revoked",
    response=TicketResponse,
    role="viewer",
)
async def create_ticket(ctx: Context[None, None]) -> TicketResponse:
    return TicketResponse(**_live(ctx).ticket_for(ctx.principal))


@api.get(
    "/api/analytics/live",
    summary="The organization's live figures, as metrics.update carries them",
    response=MetricsSnapshot,
    role="viewer",
)
async def live_metrics(ctx: Context[None, None]) -> MetricsSnapshot:
    return MetricsSnapshot(**await _live(ctx).figures(ctx.org_id))
