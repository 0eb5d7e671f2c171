"""The median first response of each bucket of a trend, read in the database.

Both databases read the range of the (organization, instant, value, ...) index and
send back one number per bucket, never the samples. PostgreSQL groups them with its
ordered-set aggregate, in one pass. SQLite has none: one pass counts each bucket's
samples, a second reads each bucket's middle one or two by LIMIT/OFFSET, sorting
only that bucket's values, in as few statements as its compound SELECT limit
allows. Either way the cost grows with the samples in the range, spent in the
database's own code: no sample crosses into Python.
"""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

from sqlalchemy import ARRAY, Float, func, literal, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ..models import Conversation, table_of
from .analytics_ranges import Range

_CONV = table_of(Conversation).c
# Below SQLite's default limit of 500 terms in one compound SELECT.
_TERMS_PER_STATEMENT = 200
_SAMPLES = (
    "FROM conversations WHERE organization_id = ? AND first_response_at >= ? "
    "AND first_response_at < ? AND first_response_seconds IS NOT NULL{channel}"
)


async def bucket_medians(
    connection: AsyncConnection,
    org_id: int,
    span: Range,
    bounds: list[datetime],
    channel_id: int | None,
) -> list[float | None]:
    """The median first response of each bucket of ``bounds`` within ``span`` (None
    for a bucket without one); the mean of the middle two of an even count."""
    if connection.dialect.name == "postgresql":
        return await _postgres(connection, org_id, span, bounds, channel_id)
    return await _sqlite(connection, org_id, span, bounds, channel_id)


async def _postgres(
    connection: AsyncConnection,
    org_id: int,
    span: Range,
    bounds: list[datetime],
    channel_id: int | None,
) -> list[float | None]:
    c = _CONV
    where = [
        c.organization_id == org_id,
        c.first_response_at >= span.start,
        c.first_response_at < span.end,
        c.first_response_seconds.is_not(None),
    ]
    if channel_id is not None:
        where.append(c.channel_id == channel_id)
    # The bucket found in the database (width_bucket over the bounds' instants), so
    # only one median per bucket comes back.
    edges = literal([b.timestamp() for b in bounds], ARRAY(Float))
    bucket = func.width_bucket(func.extract("epoch", c.first_response_at), edges)
    stmt = select(bucket, func.percentile_cont(0.5).within_group(c.first_response_seconds))
    found = {
        int(b) - 1: float(v)
        for b, v in await connection.execute(stmt.where(*where).group_by(bucket))
    }
    return [found.get(i) for i in range(len(bounds) - 1)]


async def _sqlite(
    connection: AsyncConnection,
    org_id: int,
    span: Range,
    bounds: list[datetime],
    channel_id: int | None,
) -> list[float | None]:
    edges = [
        (_text(max(lo, span.start)), _text(min(hi, span.end)))
        for lo, hi in pairwise(bounds)
    ]
    samples = _SAMPLES.format(channel="" if channel_id is None else " AND channel_id = ?")
    mine: tuple[Any, ...] = () if channel_id is None else (channel_id,)
    counts = await _counts(connection, org_id, edges, mine)
    medians: list[float | None] = [None] * len(edges)
    # "+value": sorting a bucket's few values beats walking the index kept in the
    # value's order across the whole organization, which SQLite would pick otherwise.
    term = (
        "SELECT ?, avg(v) FROM (SELECT +first_response_seconds AS v "
        f"{samples} ORDER BY +first_response_seconds LIMIT ? OFFSET ?)"
    )
    filled = sorted(counts.items())
    for first in range(0, len(filled), _TERMS_PER_STATEMENT):
        chunk = filled[first : first + _TERMS_PER_STATEMENT]
        params: list[Any] = []
        for i, n in chunk:
            params += [i, org_id, *edges[i], *mine, 2 - n % 2, (n - 1) // 2]
        sql = " UNION ALL ".join([term] * len(chunk))
        rows: list[Any] = list(await connection.exec_driver_sql(sql, tuple(params)))
        for i, median in rows:
            medians[int(i)] = float(median)
    return medians


async def _counts(
    connection: AsyncConnection,
    org_id: int,
    edges: list[tuple[str, str]],
    mine: tuple[Any, ...],
) -> dict[int, int]:
    """How many first responses each bucket holds, the empty ones left out."""
    values = ", ".join(["(?, ?, ?)"] * len(edges))
    sql = (
        f"WITH b(i, lo, hi) AS (VALUES {values}) SELECT b.i, count(*) FROM b "
        "JOIN conversations c ON c.organization_id = ? AND c.first_response_at >= b.lo "
        "AND c.first_response_at < b.hi WHERE c.first_response_seconds IS NOT NULL"
        f"{' AND c.channel_id = ?' if mine else ''} GROUP BY b.i"
    )
    params: list[Any] = [v for i, (lo, hi) in enumerate(edges) for v in (i, lo, hi)]
    rows: list[Any] = list(await connection.exec_driver_sql(sql, (*params, org_id, *mine)))
    return {int(i): int(n) for i, n in rows}


def _text(at: datetime) -> str:
    """The instant as SQLite's DATETIME text stores it: naive UTC."""
    return at.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
