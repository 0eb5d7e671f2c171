"""The message rollups: kept with every stored message, rebuilt from the messages.

A stored message adds one to its quarter hour's rows, in the message's own
transaction: one upsert statement per rollup table for all the messages of a
flush. The rebuild recomputes the rows from the messages table and must equal
what the increments wrote.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Executable,
    Integer,
    Table,
    case,
    cast,
    delete,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col

from ..db import Database
from ..models import AgentRollup, Message, MessageRollup, table_of
from ..models.analytics import SLOT_SECONDS

_CHANNELS = table_of(MessageRollup)
_AGENTS = table_of(AgentRollup)
_UPSERTS: dict[tuple[str, str], Executable] = {}


def slot_of(at: datetime) -> int:
    return int(at.timestamp()) // SLOT_SECONDS


def slot_column(dialect: str, column: Any) -> ColumnElement[int]:
    """The rollup slot of a timestamp column, in SQL."""
    if dialect == "postgresql":
        epoch = func.extract("epoch", column)
        return cast(func.floor(epoch / SLOT_SECONDS), Integer)
    return cast(func.strftime("%s", column), Integer) // SLOT_SECONDS


def _counts(
    rows: Iterable[Mapping[str, Any]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The increments of the channel rollups and of the agent rollups."""
    channels: Counter[tuple[int, int, int, str]] = Counter()
    agents: Counter[tuple[int, int, int]] = Counter()
    for row in rows:
        org, slot = row["organization_id"], slot_of(row["created_at"])
        if row["direction"] == "inbound":
            channels[(org, slot, row["channel_id"], "received")] += 1
        elif not row.get("private"):
            channels[(org, slot, row["channel_id"], "sent")] += 1
            if row.get("sender_user_id"):
                agents[(org, slot, row["sender_user_id"])] += 1
    merged: dict[tuple[int, int, int], dict[str, Any]] = {}
    for (org, slot, channel, what), n in channels.items():
        entry = merged.setdefault(
            (org, slot, channel),
            {"organization_id": org, "slot": slot, "channel_id": channel, "received": 0, "sent": 0},
        )
        entry[what] += n
    # A fixed order: two transactions adding to the same rows lock them alike.
    return (
        [merged[key] for key in sorted(merged)],
        [
            {"organization_id": org, "slot": slot, "user_id": user, "sent": n}
            for (org, slot, user), n in sorted(agents.items())
        ],
    )


def _upsert(dialect: str, table: Table) -> Executable:
    """The statement adding counts to a rollup's rows, made once per dialect and table:
    building it costs more than running it, on the ingest hot path."""
    made = _UPSERTS.get((dialect, table.name))
    if made is None:
        insert_ = postgresql.insert if dialect == "postgresql" else sqlite.insert
        stmt = insert_(table)
        counts = [name for name in ("received", "sent") if name in table.c]
        made = stmt.on_conflict_do_update(
            index_elements=[c.name for c in table.primary_key.columns],
            set_={name: table.c[name] + stmt.excluded[name] for name in counts},
        )
        _UPSERTS[(dialect, table.name)] = made
    return made


async def _add(connection: AsyncConnection, table: Table, values: list[dict[str, Any]]) -> None:
    if values:
        await connection.execute(_upsert(connection.dialect.name, table), values)


async def count_messages(connection: AsyncConnection, rows: Iterable[Mapping[str, Any]]) -> None:
    """Add stored messages (rows with ``organization_id``, ``channel_id``, ``direction``,
    ``created_at`` and optionally ``private``, ``sender_user_id``) to the rollups, in
    the caller's transaction."""
    channels, agents = _counts(rows)
    await _add(connection, _CHANNELS, channels)
    await _add(connection, _AGENTS, agents)


async def rebuild(connection: AsyncConnection, organization_id: int | None = None) -> int:
    """Recompute the rollups of one organization (all when None) from the messages; the
    number of rows written."""
    m = table_of(Message).c
    slot = slot_column(connection.dialect.name, m.created_at).label("slot")
    sent = (m.direction == "outbound") & m.private.is_(False)
    channels = select(
        m.organization_id,
        slot,
        m.channel_id,
        func.sum(case((m.direction == "inbound", 1), else_=0)),
        func.sum(case((sent, 1), else_=0)),
    ).group_by(m.organization_id, slot, m.channel_id)
    agents = (
        select(m.organization_id, slot, m.sender_user_id, func.count())
        .where(sent, m.sender_user_id.is_not(None))
        .group_by(m.organization_id, slot, m.sender_user_id)
    )
    written = 0
    for table, source, names in (
        (_CHANNELS, channels, ["organization_id", "slot", "channel_id", "received", "sent"]),
        (_AGENTS, agents, ["organization_id", "slot", "user_id", "sent"]),
    ):
        wipe = delete(table)
        if organization_id is not None:
            source = source.where(col(Message.organization_id) == organization_id)
            wipe = wipe.where(table.c.organization_id == organization_id)
        await connection.execute(wipe)
        result = await connection.execute(insert(table).from_select(names, source))
        written += int(result.rowcount or 0)
    return written


async def rebuild_all(db: Database, organization_id: int | None = None) -> int:
    """``rebuild`` in a transaction of its own, safe beside a running service."""
    async with db.session(write=True) as session:
        connection = await session.connection()
        if connection.dialect.name == "postgresql":
            # Ingest adds to rows in its own transaction: waiting for those in flight,
            # and making later ones wait, counts each message exactly once.
            await connection.execute(
                text("LOCK TABLE message_rollups, agent_rollups IN EXCLUSIVE MODE")
            )
        rows = await rebuild(connection, organization_id)
        await session.commit()
    return rows
