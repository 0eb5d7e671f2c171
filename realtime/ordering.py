"""Each client gets each stored event once, and in id order: the one place that sees to it.

Stored events reach the hub from the broker, from catch-up after a broker outage and
from gap fills; any of them may come twice, and from several publishing processes a
little out of order. Per organization, `EventOrder`:

- drops repeats by id (`RecentIds`);
- when ids are dense (1, 2, 3... per organization, as the application's outbox numbers
  them), holds an event that came early until the ones before it arrive, and after a
  short wait reads the missing ones from the event log (a late publish, or a lost one);
- knows which event the connections are due next, from where their preludes left them
  (`Connection.live_after`), and tells a new connection where its live stream starts;
- catches up from the log after the broker was away.

Each connection then skips what its own prelude already sent (`Connection.wants`).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Sequence

from .connection import CLOSE_TRY_AGAIN_LATER, Connection
from .counters import HubCounters
from .envelope import Envelope
from .eventlog import EventLog, ReplayTruncated, reading
from .protocol import REPLAY_TRUNCATED

logger = logging.getLogger(__name__)

# A long catch-up yields to the event loop this often, so that connections' writers
# drain as it goes instead of all queues filling at once.
CATCH_UP_YIELD_EVERY = 16


class RecentIds:
    """The ids an organization's connections were recently handed, to drop repeats.

    Ids arrive almost in order but not exactly (two processes publish concurrently), so
    a single high-water mark would drop legitimate late events; a bounded window of exact
    ids does not. Ids at or below `forgotten_through` fell out of the window and count
    as seen.
    """

    __slots__ = ("_ids", "_order", "_size", "forgotten_through")

    def __init__(self, size: int) -> None:
        self._size = size
        self._ids: set[int] = set()
        self._order: deque[int] = deque()
        self.forgotten_through = 0

    def add(self, id: int) -> bool:
        """Whether `id` is new; it is remembered."""
        if id <= self.forgotten_through or id in self._ids:
            return False
        self._ids.add(id)
        self._order.append(id)
        if len(self._order) > self._size:
            oldest = self._order.popleft()
            self._ids.discard(oldest)
            if oldest > self.forgotten_through:
                self.forgotten_through = oldest
        return True


class EventOrder:
    """One organization's stored events, handed on once each; in id order with a log to
    fill gaps from."""

    __slots__ = (
        "_connections",
        "_counters",
        "_fill",
        "_held",
        "_log",
        "_max_held",
        "_next_id",
        "_organization_id",
        "_recent",
        "_release",
        "_stopped",
        "_timer",
        "_wait",
    )

    def __init__(
        self,
        organization_id: int,
        release: Callable[[Envelope], None],
        connections: Callable[[], Sequence[Connection]],
        counters: HubCounters,
        *,
        window: int,
        fill_gaps_from: EventLog | None,
        wait: float,
        max_held: int,
    ) -> None:
        """`release` hands an event to the connections; `connections` are theirs now."""
        self._organization_id = organization_id
        self._release = release
        self._connections = connections
        self._counters = counters
        self._recent = RecentIds(window)
        self._log = fill_gaps_from
        self._wait = wait
        self._max_held = max_held
        # Restoring order (a log to fill from only): the id due next, and what came early.
        self._next_id: int | None = None
        self._held: dict[int, Envelope] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._fill: asyncio.Task[None] | None = None
        self._stopped = False

    @property
    def last_in_order(self) -> int | None:
        """With a log to fill from: the id of the last event handed on in order, if any.

        A new connection may start its live stream after it instead of asking the log:
        every event after it is either on its way here or held for order, and reaches it.
        """
        return None if self._next_id is None else self._next_id - 1

    def receive(self, envelope: Envelope) -> None:
        """A stored event, from the broker, a catch-up or a fill."""
        id = envelope.id
        if id is None or self._log is None:
            self._hand_on(envelope)
            return
        due = self._due()
        if due is not None and id > due:
            self._hold(id, envelope)
            return
        # Due, the first one seen, or older than due (a repeat the window drops).
        self._hand_on(envelope)
        if due is None or id == due:
            self._advance(id + 1)

    async def catch_up(self, log: EventLog) -> int:
        """Read again what the connections may have missed (e.g. while the broker was
        away); repeats are dropped by id, so this may overlap the live stream. Answers how
        many events were read."""
        floors = self._floors()
        if not floors:
            return 0
        after = max(self._recent.forgotten_through, min(floors))
        read = 0
        try:
            async with reading(log, self._organization_id, after) as events:
                async for envelope in events:
                    self.receive(envelope)
                    read += 1
                    if read % CATCH_UP_YIELD_EVERY == 0:
                        await asyncio.sleep(0)
        except ReplayTruncated:
            for connection in self._connections():
                connection.send(REPLAY_TRUNCATED)
        except Exception:
            # Without the outbox these clients may have a gap: make them resume by id.
            logger.exception("catching up organization %s failed", self._organization_id)
            for connection in self._connections():
                connection.close(CLOSE_TRY_AGAIN_LATER)
        return read

    def stop(self) -> None:
        """The organization's last connection here left."""
        self._stopped = True
        if self._timer is not None:
            self._timer.cancel()
        if self._fill is not None:
            self._fill.cancel()

    def _floors(self) -> list[int]:
        return [c.live_after for c in self._connections() if c.live_after is not None]

    def _due(self) -> int | None:
        due = self._next_id
        if due is None:
            # The first event since the organization's first connection here. What the
            # connections already have tells which one is due; taking this event's id
            # instead would send an earlier one arriving just after it out of order.
            # Before any connection's prelude is done, there is nothing to go by.
            floors = self._floors()
            if floors:
                due = self._next_id = min(floors) + 1
        return due

    def _hand_on(self, envelope: Envelope) -> None:
        if envelope.id is not None and not self._recent.add(envelope.id):
            self._counters.duplicates_dropped += 1
            return
        self._release(envelope)

    def _advance(self, next_id: int) -> None:
        """`next_id` is due: hand on what was held for it and the ones after it."""
        held = self._held
        self._next_id = next_id
        while next_id in held:
            self._hand_on(held.pop(next_id))
            next_id = self._next_id = next_id + 1
        if not held and self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _hold(self, id: int, envelope: Envelope) -> None:
        self._held[id] = envelope
        if len(self._held) > self._max_held:
            self._fill_now()
        elif self._timer is None and self._fill is None:
            self._timer = asyncio.get_running_loop().call_later(self._wait, self._fill_now)

    def _fill_now(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._fill is None:
            self._fill = asyncio.get_running_loop().create_task(
                self._fill_gaps(), name=f"realtime-fill-{self._organization_id}"
            )

    async def _fill_gaps(self) -> None:
        assert self._log is not None and self._next_id is not None
        upto = max(self._held, default=self._next_id)
        try:
            async with reading(self._log, self._organization_id, self._next_id - 1) as events:
                async for envelope in events:
                    if envelope.id is None or envelope.id > upto:
                        break
                    # Through the same door as the broker's: due ones go, early ones wait.
                    self.receive(envelope)
                    self._counters.replayed += 1
        except Exception:
            logger.exception("filling a gap for organization %s failed", self._organization_id)
        finally:
            self._fill = None
            self._skip_lost(upto)
            # What came early during the fill is after a gap the log was not asked about:
            # moving past that one too could send its late event out of order. It waits,
            # and is filled, like any other.
            if self._held and not self._stopped:
                self._timer = asyncio.get_running_loop().call_later(self._wait, self._fill_now)

    def _skip_lost(self, upto: int) -> None:
        """Whatever the log could not give up to `upto` is gone for good: move past it."""
        held = self._held
        while held:
            first = min(held)
            if first > upto:
                return
            if self._next_id is None or first > self._next_id:
                self._next_id = first
            self.receive(held.pop(first))
