"""Replies sent side by side, one lane per channel.

A channel's replies go out one at a time, oldest first (a conversation belongs to one
channel, so its replies keep their order), and channels do not wait for each other: a
slow or dead receiver (a generic channel's callback above all, which may take its whole
deadline) holds up only its own channel's replies. At most ``limit`` channels are
served at once; the others wait for a free lane.

A stop (deploy, restart) waits for the attempts under way, so their outcomes are
recorded: cut short, a message could only be marked "interrupted".
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from sqlalchemy import or_
from sqlmodel import col, select

from ..db import Database
from ..models import Message, utcnow

log = logging.getLogger("inbox.delivery")

# Channels served at once by one process.
LANES = 32
# Replies of one channel looked up at a time.
BATCH = 50

Attempt = Callable[[int], Coroutine[Any, Any, bool]]


class Lanes:
    def __init__(
        self, db: Database, attempt: Attempt, on_idle: Callable[[], None], *, limit: int = LANES
    ) -> None:
        self.db = db
        # Claims a message and sends it; False when another worker took it first.
        self.attempt = attempt
        # Called when a lane has sent all it found: replies queued on its channel
        # meanwhile need a pass to open a lane again.
        self.on_idle = on_idle
        self.limit = limit
        self._lanes: dict[int, asyncio.Task[None]] = {}
        self._under_way: set[int] = set()

    def under_way(self, message_id: int) -> bool:
        """Whether this process is attempting the message right now."""
        return message_id in self._under_way

    async def start_due(self) -> int:
        """Open a lane for each channel with replies due and no lane yet; answer how many."""
        free = self.limit - len(self._lanes)
        if free <= 0:
            return 0
        async with self.db.session() as session:
            channels = list(
                await session.exec(
                    _due()
                    .with_only_columns(col(Message.channel_id))
                    .where(col(Message.channel_id).not_in(list(self._lanes)))
                    .distinct()
                    .limit(free)
                )
            )
        for channel_id in channels:
            self._lanes[channel_id] = asyncio.create_task(
                self._drain(channel_id), name=f"delivery-channel-{channel_id}"
            )
        return len(channels)

    async def close(self) -> None:
        """Stop every lane, each once its attempt under way is recorded."""
        lanes = list(self._lanes.values())
        for lane in lanes:
            lane.cancel()
        await asyncio.gather(*lanes, return_exceptions=True)

    async def _drain(self, channel_id: int) -> None:
        try:
            while True:
                async with self.db.session() as session:
                    due = list(
                        await session.exec(
                            _due()
                            .where(col(Message.channel_id) == channel_id)
                            .order_by(col(Message.id))
                            .limit(BATCH)
                        )
                    )
                if not due:
                    # Replies queued since the look-up went unseen by the passes that
                    # found this lane open: one more pass finds them.
                    self.on_idle()
                    return
                for message_id in due:
                    self._under_way.add(message_id)
                    try:
                        await finish_even_if_cancelled(self.attempt(message_id))
                    finally:
                        self._under_way.discard(message_id)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("sending the replies of channel %d failed; trying again", channel_id)
        finally:
            self._lanes.pop(channel_id, None)


def _due() -> Any:
    """Queued messages whose attempt is due and not under way anywhere."""
    return select(col(Message.id)).where(
        col(Message.status) == "queued",
        col(Message.attempt_started_at).is_(None),
        or_(col(Message.next_attempt_at).is_(None), col(Message.next_attempt_at) <= utcnow()),
    )


async def finish_even_if_cancelled(work: Coroutine[Any, Any, bool]) -> bool:
    """Run ``work`` to its end; a cancellation meanwhile is re-raised once it is done."""
    task = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.wait([task])
        if not task.cancelled() and task.exception() is not None:
            log.error("delivery attempt failed while stopping", exc_info=task.exception())
        raise
