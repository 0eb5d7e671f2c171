"""The sender: takes events from the outbox, and keeps one drain running per endpoint
with deliveries due."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Collection, Sequence
from datetime import timedelta

from sqlalchemy import select
from sqlmodel import col

from ...db import Database
from ...models import WebhookEndpoint, utcnow
from ..outbox import EventSink
from .active import ActiveEndpoints
from .client import DeliveryClient
from .drain import _DELIVERIES, Drain, Outlet, due
from .fanout import fan_out
from .keys import WebhookSecrets
from .outcomes import prune

log = logging.getLogger("inbox.webhooks")

# How often the outbox and the due retries are looked at while some organization has an
# active endpoint: at once after work, less often the longer there is none. Commits of
# this process wake the sender sooner.
POLL_SECONDS = 0.1
IDLE_POLL_SECONDS = 0.5
# Passes woken by commits are this far apart at least, so that a burst of commits is
# taken from the outbox in a few transactions rather than one each.
MIN_PASS_SECONDS = 0.1
PRUNE_EVERY_SECONDS = 3600


class WebhookSender:
    def __init__(
        self,
        db: Database,
        sink: EventSink,
        http: DeliveryClient,
        secrets: WebhookSecrets,
        *,
        schedule: Sequence[float],
        timeout: float,
        concurrency: int,
        retention: timedelta = timedelta(days=7),
    ) -> None:
        self.db = db
        self.outlet = Outlet(db, sink, http, secrets, list(schedule), timeout, concurrency)
        # Finished deliveries are kept as long as the events they carried.
        self.retention = retention
        self.active = ActiveEndpoints(db)
        self._drains: dict[int, Drain] = {}
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        # Whether the next pass looks for due deliveries (retries, other processes'),
        # and when one last did.
        self._look_due = True
        self._due_looked = 0.0

    def wake(self, organizations: Collection[int] | None = None) -> None:
        """Committed events of ``organizations``; None: something else changed (an
        endpoint, a delivery to send again), so everything is looked at again."""
        if organizations is None:
            self.active.invalidate()
            self._look_due = True
            for drain in self._drains.values():
                drain.poke(reread=True)
        elif not self.active.may_concern(organizations):
            return
        self._wake.set()

    async def run(self) -> None:
        pruned = time.monotonic()
        wait = POLL_SECONDS
        try:
            while True:
                # Cleared before the pass: a commit during it wakes the next one.
                self._wake.clear()
                started = time.monotonic()
                try:
                    if started - pruned >= PRUNE_EVERY_SECONDS:
                        pruned = started
                        await prune(self.db, self.retention)
                    busy = await self._pass()
                    wait = POLL_SECONDS if busy else min(wait * 2, IDLE_POLL_SECONDS)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("webhook pass failed; retrying")
                with contextlib.suppress(Exception):  # a failed read is retried at the pass
                    if not await self.active.organizations():
                        # Nothing to send anywhere: only the set of endpoints is read
                        # again, when it is due.
                        wait = self.active.ttl
                woken = False
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait)
                    woken = True
                if not woken:
                    self._look_due = True
                else:
                    await asyncio.sleep(max(0.0, MIN_PASS_SECONDS - (time.monotonic() - started)))
        finally:
            tasks = list(self._tasks.values())
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _pass(self) -> bool:
        """Deliveries made from the outbox, drains started or told; whether there was
        anything to do."""
        if not await self.active.organizations():
            return False
        made = await fan_out(self.db)
        for endpoint_id in made:
            self._poke(endpoint_id)
        found = False
        # Also while commits keep waking it: retries fall due on their own clock.
        if self._look_due or time.monotonic() - self._due_looked >= IDLE_POLL_SECONDS:
            self._look_due = False
            self._due_looked = time.monotonic()
            for endpoint_id in await self._due_endpoints():
                found = True
                self._poke(endpoint_id)
        return bool(made) or found

    def _poke(self, endpoint_id: int) -> None:
        drain = self._drains.get(endpoint_id)
        if drain is not None:
            drain.poke()
            return
        drain = self._drains[endpoint_id] = Drain(self.outlet, endpoint_id)
        self._tasks[endpoint_id] = asyncio.create_task(
            self._drain(drain), name=f"webhook-{endpoint_id}"
        )

    async def _drain(self, drain: Drain) -> None:
        try:
            await drain.run()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("webhook endpoint %d: sending failed", drain.endpoint_id)
        finally:
            self._drains.pop(drain.endpoint_id, None)
            self._tasks.pop(drain.endpoint_id, None)
        if drain.poked:
            # Told of new deliveries while it was stopping: a new drain takes them.
            self._poke(drain.endpoint_id)

    async def _due_endpoints(self) -> list[int]:
        """Active endpoints with deliveries due (retries, or made by another process)."""
        now = utcnow()
        async with self.db.session() as session:
            rows = await (await session.connection()).execute(
                select(_DELIVERIES.c.endpoint_id)
                .join(WebhookEndpoint, col(WebhookEndpoint.id) == _DELIVERIES.c.endpoint_id)
                .where(*due(now), col(WebhookEndpoint.active))
                .distinct()
            )
            return [r[0] for r in rows]
