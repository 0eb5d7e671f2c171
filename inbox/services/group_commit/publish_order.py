"""Batches publish their events one after the other, in the order their commits ended.

Two batches of one organization commit one after the other (its event counter's row
lock), and the second needs a round trip more after the first's commit: the order in
which commits are seen to end is the order of their event ids.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from ..outbox import EventSink, OutboxEvent, publish_committed


class PublishOrder:
    """Hands each committed batch's events to the sink once every batch committed
    before it has published."""

    def __init__(self, sink: EventSink) -> None:
        self.sink = sink
        # Done once the batch committed last has published (or had nothing to).
        self._last: asyncio.Future[None] | None = None

    async def publish(self, events: Sequence[OutboxEvent]) -> None:
        """Publish a batch that has just committed; call it right after the commit."""
        previous = self._last
        published = self._last = asyncio.get_running_loop().create_future()
        try:
            if previous is not None:
                await asyncio.shield(previous)
            await publish_committed(self.sink, events)
        finally:
            published.set_result(None)
