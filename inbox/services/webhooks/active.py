"""Which organizations have an active endpoint: so that ingest without one pays nothing.

The answer is read at most once per ``ttl`` (one small query over the endpoints), and at
once after a change made through this process. A change made on another process is
seen within ``ttl``; being late costs no event, only that much delay: the endpoints'
cursors, not this set, say which events are owed.
"""

from __future__ import annotations

import time
from collections.abc import Collection

from sqlalchemy import select

from ...db import Database
from ...models import WebhookEndpoint, table_of

_ENDPOINTS = table_of(WebhookEndpoint)
TTL_SECONDS = 1.0


class ActiveEndpoints:
    def __init__(self, db: Database, ttl: float = TTL_SECONDS) -> None:
        self.db = db
        self.ttl = ttl
        self._organizations: frozenset[int] = frozenset()
        self._read_at: float | None = None
        self._changes = 0

    @property
    def fresh(self) -> bool:
        return self._read_at is not None and time.monotonic() - self._read_at < self.ttl

    def invalidate(self) -> None:
        self._read_at = None
        self._changes += 1

    def may_concern(self, organizations: Collection[int]) -> bool:
        """False only when it is known that none of ``organizations`` has an active
        endpoint; a commit of theirs then needs no look at the outbox."""
        if not self.fresh:
            return True
        return not self._organizations.isdisjoint(organizations)

    async def organizations(self) -> frozenset[int]:
        if not self.fresh:
            # A change told while the query runs may be missing from its answer: that
            # answer is used once, not kept.
            started, changes = time.monotonic(), self._changes
            async with self.db.session() as session:
                rows = await (await session.connection()).execute(
                    select(_ENDPOINTS.c.organization_id).where(_ENDPOINTS.c.active).distinct()
                )
                self._organizations = frozenset(r[0] for r in rows)
            if changes == self._changes:
                self._read_at = started
        return self._organizations
