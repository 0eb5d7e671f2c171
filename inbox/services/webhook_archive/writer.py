"""Writes the archive's records that no transaction of the data carries, and prunes it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, func, insert, select

from ...db import Database
from ...models import WebhookRecord, table_of, utcnow

log = logging.getLogger("inbox.webhook_archive")

_TABLE = table_of(WebhookRecord)
# Rows waiting past this are dropped, newest first: the database is away, and the
# requests themselves were answered.
MAX_PENDING = 5_000
# Distinct forged-request senders followed in a minute; past it, new ones keep nothing.
MAX_FORGERS = 10_000
PRUNE_EVERY = 600.0


class ArchiveWriter:
    """Batches records written off the request path; prunes by age and total size."""

    def __init__(
        self,
        db: Database,
        *,
        days: int,
        max_bytes: int,
        forged_per_minute: int,
        interval: float = 0.5,
    ) -> None:
        self.db = db
        self.retention = timedelta(days=days)
        self.max_bytes = max_bytes
        self.forged_per_minute = forged_per_minute
        self.interval = interval
        self._pending: list[dict[str, Any]] = []
        self._wake = asyncio.Event()
        self._minute = -1
        self._forged: dict[str, int] = {}
        self._lock = asyncio.Lock()

    def put(self, row: dict[str, Any], *, client: str) -> bool:
        """Queue ``row``; False when it is not kept: refused by its signature or key (a
        forgery, or a request naming no channel) past its sender's cap."""
        if row["status"] in (401, 403) and not self._forgery_kept(client):
            return False
        if len(self._pending) >= MAX_PENDING:
            return False
        self._pending.append(row)
        if len(self._pending) >= 100:
            self._wake.set()
        return True

    def _forgery_kept(self, client: str) -> bool:
        minute = int(time.monotonic() // 60)
        if minute != self._minute:
            self._minute = minute
            self._forged.clear()
        seen = self._forged.get(client)
        if seen is None and len(self._forged) >= MAX_FORGERS:
            return False
        if (seen or 0) >= self.forged_per_minute:
            return False
        self._forged[client] = (seen or 0) + 1
        return True

    async def flush(self) -> list[int]:
        """Write what is queued; the ids the rows got, in order."""
        async with self._lock:
            rows, self._pending = self._pending, []
            if not rows:
                return []
            try:
                async with self.db.session(write=True) as session:
                    connection = await session.connection()
                    # One row at a time only to learn the ids: batches are small.
                    ids = [
                        int(
                            (
                                await connection.execute(
                                    insert(_TABLE).values(**row).returning(_TABLE.c.id)
                                )
                            ).scalar_one()
                        )
                        for row in rows
                    ]
                    await session.commit()
            except Exception as exc:
                log.warning("webhook archive: %d records not written (%s)", len(rows), exc)
                self._pending[:0] = rows[: MAX_PENDING - len(self._pending)]
                raise
            return ids

    async def prune(self) -> int:
        """Delete records older than the retention, then the oldest past the size cap."""
        async with self.db.session(write=True) as session:
            connection = await session.connection()
            gone = (
                await connection.execute(
                    delete(_TABLE).where(_TABLE.c.received_at < utcnow() - self.retention)
                )
            ).rowcount or 0
            running = (
                select(
                    _TABLE.c.id,
                    func.sum(_TABLE.c.size).over(order_by=_TABLE.c.id.desc()).label("total"),
                )
            ).subquery()
            cut = (
                await connection.execute(
                    select(func.max(running.c.id)).where(running.c.total > self.max_bytes)
                )
            ).scalar()
            if cut is not None:
                gone += (
                    await connection.execute(delete(_TABLE).where(_TABLE.c.id <= cut))
                ).rowcount or 0
            await session.commit()
        return int(gone)

    async def run(self) -> None:
        """Flush every ``interval``, prune every ten minutes, until cancelled."""
        next_prune = time.monotonic()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)
            self._wake.clear()
            try:
                await self.flush()
                if time.monotonic() >= next_prune:
                    next_prune = time.monotonic() + PRUNE_EVERY
                    await self.prune()
            except Exception as exc:  # the database is away: the next round tries again
                log.warning("webhook archive: %s", exc)

    async def close(self) -> None:
        try:
            await self.flush()
        except Exception:
            return
