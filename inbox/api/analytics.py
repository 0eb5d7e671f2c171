"""The analytics reports: JSON in the envelope, or CSV for spreadsheets."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Any

import orjson
from starlette.responses import Response

from ..models import Channel, Organization
from ..schemas.analytics import (
    AgentFigures,
    AgentsResponse,
    OverviewResponse,
    RangeQuery,
    TrendQuery,
    TrendResponse,
)
from ..services import analytics
from ..services.analytics_ranges import Range, resolve_range, zone_named
from ..web.endpoint import Context, Endpoints
from .common import get_owned

api = Endpoints("analytics")

RANGE_NOTE = (
    " Range: from/to (ISO-8601, to exclusive; default today in the organization's time "
    "zone), timezone= for another zone. format=csv or Accept: text/csv answers CSV."
)


async def _range(ctx: Context[Any, None]) -> Range:
    query: RangeQuery = ctx.query
    if query.timezone is not None:
        zone = zone_named(query.timezone)
    else:
        async with ctx.state.db.session() as session:
            org = await session.get(Organization, ctx.org_id)
        assert org is not None
        zone = zone_named(org.timezone)
    return resolve_range(query.from_, query.to, zone)


def _wants_csv(ctx: Context[Any, None]) -> bool:
    query: RangeQuery = ctx.query
    if "format" in query.model_fields_set:
        return query.format == "csv"
    return "text/csv" in ctx.request.headers.get("accept", "")


def _csv(header: list[str], rows: Iterable[list[Any]], name: str) -> Response:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if v is None else v for v in row])
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="{name}.csv"'},
    )


def _json(data: Any) -> Response:
    return Response(orjson.dumps({"data": data}), media_type="application/json")


@api.get(
    "/api/analytics/overview",
    summary="Conversations, messages, contacts, leads, response and resolution times and "
    "figures per channel over a range (viewer)",
    query=RangeQuery,
    response=OverviewResponse,
    role="viewer",
)
async def analytics_overview(ctx: Context[RangeQuery, None]) -> Response:
    """Private notes are not sent messages. A first response runs from a conversation's
    first inbound message to the first reply sent after it; a resolution from its opening
    to its closing. CSV: one `metric,value` row per figure, `by_channel.<id>.<figure>`
    for each channel's."""
    span = await _range(ctx)
    async with ctx.state.db.session() as session:
        data = await analytics.overview(await session.connection(), ctx.org_id, span)
    if not _wants_csv(ctx):
        return _json(data)
    rows: list[list[Any]] = []
    for section, figures in data.items():
        if section == "by_channel":
            for channel in figures:
                for name, value in channel.items():
                    if name != "channel_id":
                        rows.append([f"by_channel.{channel['channel_id']}.{name}", value])
        else:
            rows.extend([f"{section}.{name}", value] for name, value in figures.items())
    return _csv(["metric", "value"], rows, "overview")


@api.get(
    "/api/analytics/trends",
    summary="One metric per hour, day or week of a range, every bucket present (viewer)",
    query=TrendQuery,
    response=TrendResponse,
    role="viewer",
)
async def analytics_trends(ctx: Context[TrendQuery, None]) -> Response:
    """Buckets begin on local hours, midnights or Mondays of the zone: a day across a
    daylight-saving change lasts 23 or 25 hours. Counts are 0 in an empty bucket,
    first_response_seconds (the median of first responses in the bucket) null. At most
    1,000 buckets per call. CSV: `start,value`."""
    q = ctx.query
    span = await _range(ctx)
    async with ctx.state.db.session() as session:
        if q.channel_id is not None:
            await get_owned(session, Channel, q.channel_id, ctx.org_id)
        data = await analytics.trends(
            await session.connection(), ctx.org_id, span, q.metric, q.interval, q.channel_id
        )
    if not _wants_csv(ctx):
        return _json(data)
    rows = [[p["start"], p["value"]] for p in data["points"]]
    return _csv(["start", q.metric], rows, f"trends-{q.metric}")


@api.get(
    "/api/analytics/agents",
    summary="Each agent's conversations, replies and median first response over a range, "
    "and whether they are online (viewer)",
    query=RangeQuery,
    response=AgentsResponse,
    role="viewer",
)
async def analytics_agents(ctx: Context[RangeQuery, None]) -> Response:
    span = await _range(ctx)
    live = ctx.state.live
    online = (
        {u for u, status in (await live.statuses(ctx.org_id)).items() if status == "online"}
        if live is not None
        else set()
    )
    async with ctx.state.db.session() as session:
        data = await analytics.agents(await session.connection(), ctx.org_id, span, online)
    if not _wants_csv(ctx):
        return _json(data)
    header = list(AgentFigures.model_fields)
    return _csv(header, ([row[name] for name in header] for row in data), "agents")
