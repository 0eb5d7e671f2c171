"""The records of stored deliveries, written in the group commit's transaction through
the database driver itself.

These rows are on the path of every webhook acknowledged: built and bound by
SQLAlchemy's Core, they cost about 40 µs of CPU each, twice what the insert costs the
driver (`bench.archive_cost`). The values are given as the columns' types would bind
them: JSON text, and the dialect's form of a moment.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from ...models.types import UTCDateTime

COLUMNS = (
    "organization_id",
    "channel_id",
    "kind",
    "received_at",
    "method",
    "url",
    "headers",
    "body",
    "size",
    "outcome",
    "status",
    "error",
    "replay_of",
)
_MARKS = {
    "postgresql": ", ".join(f"${n}" for n in range(1, len(COLUMNS) + 1)),
    "sqlite": ", ".join("?" for _ in COLUMNS),
}


def _statement(dialect: str) -> str:
    return f"INSERT INTO webhook_log ({', '.join(COLUMNS)}) VALUES ({_MARKS[dialect]})"


_STATEMENTS = {dialect: _statement(dialect) for dialect in _MARKS}


async def insert_rows(connection: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    """Insert `delivery_row`s in ``connection``'s transaction."""
    moment = UTCDateTime().bind_processor(connection.dialect)
    params = [
        (
            row["organization_id"],
            row["channel_id"],
            row["kind"],
            moment(row["received_at"]),
            row["method"],
            row["url"],
            orjson.dumps(row["headers"]).decode(),
            row["body"],
            row["size"],
            row["outcome"],
            row["status"],
            row["error"],
            row["replay_of"],
        )
        for row in rows
    ]
    raw = await connection.get_raw_connection()
    await raw.driver_connection.executemany(  # type: ignore[union-attr]
        _STATEMENTS[connection.dialect.name], params
    )
