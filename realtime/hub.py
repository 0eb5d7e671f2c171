"""The per-process registry of connections and the fan-out of events to them.

`dispatch` never waits on a socket, so one that stopped reading cannot slow the others.
Until a connection is live (its prelude, session.ready and any replay, has been sent)
its events wait in a bounded queue that one writer task drains. Once live, a socket
that takes encoded frames directly gets each event's frame without a queue: the
first it is handed in a turn of the event loop at once, any more in that turn
together in one write at its end (a burst costs two system calls, not one per
event), bounded by the bytes its transport holds unsent. Any other socket keeps the
queue and the writer. Past its limits a connection is evicted with close code 4008
and can resume by id.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from .envelope import Envelope
from .eventlog import EventLog, ReplayTruncated
from .protocol import REPLAY_TRUNCATED

logger = logging.getLogger(__name__)

CLOSE_GOING_AWAY = 1001
CLOSE_INTERNAL_ERROR = 1011
CLOSE_SERVICE_RESTART = 1012
CLOSE_TRY_AGAIN_LATER = 1013
CLOSE_TOO_SLOW = 4008
CLOSE_UNAUTHORIZED = 4401


class SocketClosed(Exception):
    """The peer is gone: nothing more can be sent."""


class Socket(Protocol):
    """The transport side of a connection, as the hub needs it."""

    async def send_text(self, text: str) -> None:
        """Send one text frame; raise SocketClosed when the peer is gone."""
        ...

    @property
    def takes_frames(self) -> bool:
        """Whether `write_frame` can be used: the transport takes encoded frames."""
        ...

    def write_frame(self, frame: bytes) -> int:
        """Write encoded frames (one or several, back to back) now, without waiting;
        answer how many bytes the transport holds unsent. Raise SocketClosed when the
        peer is gone."""
        ...

    async def close(self, code: int) -> None:
        """Close gracefully. May block on a peer that stopped reading; callers bound it."""
        ...

    def abort(self) -> None:
        """Drop the connection now, discarding unsent data. Harmless once closed."""
        ...


@dataclass
class HubCounters:
    connections_opened: int = 0
    connections_closed: int = 0
    events_dispatched: int = 0
    duplicates_dropped: int = 0
    deliveries: int = 0
    evictions: int = 0
    aborted: int = 0
    replayed: int = 0


class _RecentIds:
    """The ids an organization's connections were recently handed, to drop repeats.

    Repeats come from catching up after a broker outage. Ids arrive almost in order but
    not exactly (two processes publish concurrently), so a single high-water mark would
    drop legitimate late events; a bounded window of exact ids does not. Ids at or below
    `floor` fell out of the window and count as seen.
    """

    __slots__ = ("_ids", "_order", "_size", "floor")

    def __init__(self, size: int) -> None:
        self._size = size
        self._ids: set[int] = set()
        self._order: deque[int] = deque()
        self.floor = 0

    def add(self, id: int) -> bool:
        if id <= self.floor or id in self._ids:
            return False
        self._ids.add(id)
        self._order.append(id)
        if len(self._order) > self._size:
            oldest = self._order.popleft()
            self._ids.discard(oldest)
            if oldest > self.floor:
                self.floor = oldest
        return True


class _Organization:
    __slots__ = ("connections", "filling", "held", "next_id", "recent")

    def __init__(self, window: int) -> None:
        # Replaced, never mutated: dispatch iterates it while connections come and go.
        self.connections: tuple[Connection, ...] = ()
        self.recent = _RecentIds(window)
        # Restoring order (dense ids only): the id due next, and events that came early.
        self.next_id: int | None = None
        self.held: dict[int, Envelope] = {}
        self.filling: asyncio.TimerHandle | asyncio.Task[None] | None = None


class Connection:
    """One client: its filters, its bounded queue and its writer task."""

    __slots__ = (
        "_busy",
        "_close_timeout",
        "_closer",
        "_direct",
        "_hub",
        "_max_bytes",
        "_max_messages",
        "_pending",
        "_pending_bytes",
        "_queue",
        "_queued_bytes",
        "_ready",
        "_writer",
        "close_code",
        "closing",
        "conversation_ids",
        "events",
        "floor",
        "id",
        "organization_id",
        "socket",
        "subject",
    )

    def __init__(
        self,
        hub: Hub,
        socket: Socket,
        organization_id: int,
        *,
        events: frozenset[str] | None,
        conversation_ids: frozenset[int] | None,
        subject: str | None = None,
    ) -> None:
        self._hub = hub
        # Who holds it (the application's words, e.g. "user:5"), so it can be revoked.
        self.subject = subject
        self.socket = socket
        self.id = secrets.token_urlsafe(12)
        self.organization_id = organization_id
        # None means "everything" in that dimension.
        self.events = events
        self.conversation_ids = conversation_ids
        # Stored events with an id at or below the floor were already sent (or predate the
        # connection). None until the prelude (session.ready and replay) has set it.
        self.floor: int | None = None
        self.closing = False
        self.close_code: int | None = None
        self._queue: deque[Envelope] = deque()
        self._queued_bytes = 0
        self._max_messages = hub.max_queue_messages
        self._max_bytes = hub.max_queue_bytes
        self._close_timeout = hub.close_timeout
        self._ready = asyncio.Event()
        # Set once live on a socket that takes frames directly: no queue, no writer task.
        self._direct = False
        # Whether a frame went out in this turn of the event loop; the frames handed
        # after it, pending until the end of the turn (one, or a list of several).
        self._busy = False
        self._pending: bytes | list[bytes] | None = None
        self._pending_bytes = 0
        self._writer: asyncio.Task[None] | None = None
        self._closer: asyncio.Task[None] | None = None

    @property
    def direct(self) -> bool:
        """Whether events are written straight to the transport (live, frame-taking)."""
        return self._direct

    def wants(self, envelope: Envelope) -> bool:
        if self.events is not None and envelope.type not in self.events:
            return False
        conversation_id = envelope.conversation_id
        return (
            self.conversation_ids is None
            or conversation_id is None
            or conversation_id in self.conversation_ids
        )

    def start(self, prelude: Callable[[], Awaitable[int]]) -> None:
        """Start the writer: `prelude` sends what comes first and returns the floor."""
        self._writer = asyncio.get_running_loop().create_task(
            self._write(prelude), name=f"realtime-writer-{self.id}"
        )

    async def send_now(self, envelope: Envelope) -> None:
        """Send directly, for the prelude only: it runs in the writer task."""
        await self.socket.send_text(envelope.text)

    def send(self, envelope: Envelope) -> None:
        """Queue a frame for this connection alone (pong, error, ...)."""
        if not self.closing:
            self._push(envelope, len(envelope.frame))

    def close(self, code: int) -> None:
        """Close from the server side; never waits, safe to call from dispatch."""
        if self.closing:
            return
        # What it was handed before goes out before the close frame.
        self._write_pending()
        if self.closing:  # the write found the peer gone, or evicted it
            return
        self._shut_down(code)
        self._closer = asyncio.get_running_loop().create_task(
            self._close_socket(code), name=f"realtime-close-{self.id}"
        )

    async def finish(self) -> None:
        """The connection is over (the peer left, or the server closed it): clean up."""
        if not self.closing:
            self._shut_down(None)
            if self._writer is not None:
                self._writer.cancel()
        pending = [t for t in (self._writer, self._closer) if t is not None]
        if pending:
            await asyncio.wait(pending)
        self._hub.counters.connections_closed += 1
        # A graceful close can leave a socket that waits forever to flush its buffer to a
        # peer that stopped reading; whatever happened, drop it after the timeout.
        asyncio.get_running_loop().call_later(self._close_timeout, self.socket.abort)

    def _shut_down(self, code: int | None) -> None:
        self.closing = True
        self.close_code = code
        self._queue.clear()
        self._queued_bytes = 0
        self._pending = None
        self._hub._unregister(self)

    def _push(self, envelope: Envelope, size: int) -> None:
        if self._direct:
            self._write_direct(envelope)
            return
        self._queue.append(envelope)
        self._queued_bytes += size
        if len(self._queue) > self._max_messages or self._queued_bytes > self._max_bytes:
            self._evict(f"{len(self._queue)} frames, {self._queued_bytes} bytes queued")
        else:
            self._ready.set()

    def _write_direct(self, envelope: Envelope) -> None:
        frame = envelope.wire
        if not self._busy:
            self._busy = True
            hub = self._hub
            if not hub._busy:
                asyncio.get_running_loop().call_soon(hub._end_turn)
            hub._busy.append(self)
            self._write_now(frame)
            return
        pending = self._pending
        if pending is None:
            self._pending = frame
            self._pending_bytes = len(frame)
        elif isinstance(pending, bytes):
            self._pending = [pending, frame]
            self._pending_bytes += len(frame)
        else:
            pending.append(frame)
            self._pending_bytes += len(frame)
        if self._pending_bytes > self._max_bytes:
            # No more pending in memory than a transport may hold unsent.
            self._write_pending()

    def _end_turn(self) -> None:
        self._busy = False
        self._write_pending()

    def _write_pending(self) -> None:
        pending = self._pending
        if pending is None or self.closing:
            return
        self._pending = None
        self._write_now(pending if isinstance(pending, bytes) else b"".join(pending))

    def _write_now(self, frames: bytes) -> None:
        try:
            unsent = self.socket.write_frame(frames)
        except SocketClosed:
            # The peer is gone; its disconnect, on the way, finishes the connection.
            self._shut_down(None)
            return
        if unsent > self._max_bytes:
            self._evict(f"{unsent} bytes unsent")

    def _evict(self, why: str) -> None:
        self._pending = None
        self._hub.counters.evictions += 1
        logger.info(
            "evicting connection %s of organization %s: %s", self.id, self.organization_id, why
        )
        self.close(CLOSE_TOO_SLOW)

    async def _write(self, prelude: Callable[[], Awaitable[int]]) -> None:
        try:
            floor = self.floor = await prelude()
            queue, ready, send = self._queue, self._ready, self.socket.send_text
            direct = self.socket.takes_frames
            while True:
                while queue and not self.closing:
                    envelope = queue.popleft()
                    self._queued_bytes -= len(envelope.frame)
                    # Live events buffered while the prelude replayed may repeat it.
                    if envelope.id is not None and envelope.id <= floor:
                        continue
                    if direct:
                        self._write_direct(envelope)
                    else:
                        await send(envelope.text)
                if direct:
                    # Drained without waiting, so nothing was queued meanwhile: from now
                    # on `_push` writes each frame itself and this task is done.
                    self._direct = not self.closing
                    self._writer = None
                    return
                ready.clear()
                await ready.wait()
        except SocketClosed:
            pass
        except Exception:
            logger.exception("writer of connection %s failed", self.id)
            self.close(CLOSE_INTERNAL_ERROR)

    async def _close_socket(self, code: int) -> None:
        writer = self._writer
        if writer is not None and not writer.done():
            # It may be blocked in a send that will never complete.
            writer.cancel()
            await asyncio.wait([writer])
        try:
            async with asyncio.timeout(self._close_timeout):
                await self.socket.close(code)
        except TimeoutError:
            self._hub.counters.aborted += 1
            logger.info("connection %s did not take its close frame: aborting", self.id)
            self.socket.abort()
        except SocketClosed:
            pass
        except Exception:
            logger.exception("closing connection %s failed: aborting", self.id)
            self.socket.abort()


class Hub:
    def __init__(
        self,
        *,
        max_queue_messages: int = 1024,
        max_queue_bytes: int = 1 << 20,
        close_timeout: float = 5.0,
        dedupe_window: int = 256,
        dense_ids: EventLog | None = None,
        reorder_wait: float = 0.05,
        max_held: int = 4096,
    ) -> None:
        """`dense_ids`: the event log of an application whose stored ids count 1, 2, 3...
        per organization. Then a jump in ids means an event is late (another process
        published it a moment later) or lost (its publish failed): the hub holds what came
        early for `reorder_wait` seconds, then fetches the missing ids from the log, so
        every connection gets every event in id order."""
        self.max_queue_messages = max_queue_messages
        self.max_queue_bytes = max_queue_bytes
        self.close_timeout = close_timeout
        self.counters = HubCounters()
        self._dedupe_window = dedupe_window
        self._organizations: dict[int, _Organization] = {}
        self._dense_ids = dense_ids
        self._reorder_wait = reorder_wait
        self._max_held = max_held
        # The connections that wrote in this turn of the event loop.
        self._busy: list[Connection] = []

    @property
    def connection_count(self) -> int:
        return sum(len(org.connections) for org in self._organizations.values())

    def last_in_order(self, organization_id: int) -> int | None:
        """With dense ids: the id of the last event handed out in order, if any was.

        A new connection may take it as its floor instead of asking the log: every event
        after it is either on its way here or held for order, and reaches it.
        """
        org = self._organizations.get(organization_id)
        if org is None or org.next_id is None:
            return None
        return org.next_id - 1

    def connections(self, organization_id: int) -> tuple[Connection, ...]:
        org = self._organizations.get(organization_id)
        return () if org is None else org.connections

    def connect(
        self,
        socket: Socket,
        organization_id: int,
        *,
        events: Iterable[str] | None = None,
        conversation_ids: Iterable[int] | None = None,
        subject: str | None = None,
    ) -> Connection:
        """Register a connection: from now on its events are queued, not lost."""
        connection = Connection(
            self,
            socket,
            organization_id,
            events=None if events is None else frozenset(events),
            conversation_ids=None if conversation_ids is None else frozenset(conversation_ids),
            subject=subject,
        )
        org = self._organizations.get(organization_id)
        if org is None:
            org = self._organizations[organization_id] = _Organization(self._dedupe_window)
        org.connections = (*org.connections, connection)
        self.counters.connections_opened += 1
        return connection

    def revoke(self, organization_id: int, subject: str, code: int = CLOSE_UNAUTHORIZED) -> int:
        """Close the connections a revoked credential opened; answer how many."""
        org = self._organizations.get(organization_id)
        if org is None:
            return 0
        revoked = [c for c in org.connections if c.subject == subject]
        for connection in revoked:
            connection.close(code)
        return len(revoked)

    def dispatch(self, envelope: Envelope) -> None:
        """Hand an event to every local connection of its organization that wants it.

        It only queues. Dispatching a long burst without yielding to the event loop would
        queue all of it at once and evict healthy connections: callers yield now and then.
        """
        org = self._organizations.get(envelope.organization_id)
        if org is None:
            return
        if envelope.id is not None and self._dense_ids is not None:
            self._in_order(org, envelope, envelope.id)
        else:
            self._fan_out(org, envelope)

    def _in_order(self, org: _Organization, envelope: Envelope, id: int) -> None:
        due = org.next_id
        if due is None:
            # The first event since the organization's first connection here. Ids the
            # connections already have (up to their floors) tell which one is due; taking
            # this event's id instead would send an earlier one arriving just after it out
            # of order. Before any floor is known, there is nothing to go by.
            floors = [c.floor for c in org.connections if c.floor is not None]
            if floors:
                due = org.next_id = min(floors) + 1
        if due is not None and id > due:
            org.held[id] = envelope
            if len(org.held) > self._max_held:
                self._fill_gap_now(envelope.organization_id, org)
            elif org.filling is None:
                org.filling = asyncio.get_running_loop().call_later(
                    self._reorder_wait, self._fill_gap_now, envelope.organization_id, org
                )
            return
        # Due, the first one seen, or older than due (a repeat the window drops).
        self._fan_out(org, envelope)
        if due is None or id == due:
            org.next_id = id + 1
            while org.next_id in org.held:
                self._fan_out(org, org.held.pop(org.next_id))
                org.next_id += 1
            if not org.held and isinstance(org.filling, asyncio.TimerHandle):
                org.filling.cancel()
                org.filling = None

    def _fill_gap_now(self, organization_id: int, org: _Organization) -> None:
        if isinstance(org.filling, asyncio.TimerHandle):
            org.filling.cancel()
        if isinstance(org.filling, asyncio.Task):
            return
        org.filling = asyncio.get_running_loop().create_task(self._fill_gap(organization_id, org))

    async def _fill_gap(self, organization_id: int, org: _Organization) -> None:
        assert self._dense_ids is not None and org.next_id is not None
        upto = max(org.held, default=org.next_id)
        events = self._dense_ids.after(organization_id, org.next_id - 1)
        try:
            async for envelope in events:
                assert envelope.id is not None
                if envelope.id > upto:
                    break
                self._in_order(org, envelope, envelope.id)
                self.counters.replayed += 1
        except Exception:
            logger.exception("filling a gap for organization %s failed", organization_id)
        finally:
            aclose = getattr(events, "aclose", None)
            if aclose is not None:
                await aclose()
            org.filling = None
            # Whatever the log could not give up to `upto` is gone for good: move past it.
            while org.held and min(org.held) <= upto:
                first = min(org.held)
                if org.next_id is None or first > org.next_id:
                    org.next_id = first
                self._in_order(org, org.held.pop(first), first)
            # What came early during the fill is after a gap the log was not asked about:
            # moving past that one too would send its late event out of order. It waits,
            # and is filled, like any other.
            if org.held and self._organizations.get(organization_id) is org:
                org.filling = asyncio.get_running_loop().call_later(
                    self._reorder_wait, self._fill_gap_now, organization_id, org
                )

    def _fan_out(self, org: _Organization, envelope: Envelope) -> None:
        id = envelope.id
        if id is not None and not org.recent.add(id):
            self.counters.duplicates_dropped += 1
            return
        type, conversation_id, source = envelope.type, envelope.conversation_id, envelope.source
        size = len(envelope.frame)
        delivered = 0
        for connection in org.connections:
            if connection.events is not None and type not in connection.events:
                continue
            conversations = connection.conversation_ids
            if (
                conversations is not None
                and conversation_id is not None
                and conversation_id not in conversations
            ):
                continue
            if source is not None and source == connection.id:
                continue
            floor = connection.floor
            if id is not None and floor is not None and id <= floor:
                continue
            connection._push(envelope, size)
            delivered += 1
        self.counters.events_dispatched += 1
        self.counters.deliveries += delivered

    async def catch_up(self, event_log: EventLog) -> int:
        """Re-dispatch what may have been missed, e.g. after the broker came back.

        Already-delivered events are dropped by id, so this can overlap the live stream.
        """
        dispatched = 0
        for organization_id, org in list(self._organizations.items()):
            floors = [c.floor for c in org.connections if c.floor is not None]
            if not floors:
                continue
            after = max(org.recent.floor, min(floors))
            events = event_log.after(organization_id, after)
            try:
                async for envelope in events:
                    self.dispatch(envelope)
                    dispatched += 1
                    if dispatched % 16 == 0:
                        # Let the writers drain so a long catch-up does not evict everyone.
                        await asyncio.sleep(0)
            except ReplayTruncated:
                for connection in org.connections:
                    connection.send(REPLAY_TRUNCATED)
            except Exception:
                # Without the outbox these clients may have a gap: make them resume by id.
                logger.exception("catching up organization %s failed", organization_id)
                for connection in org.connections:
                    connection.close(CLOSE_TRY_AGAIN_LATER)
            finally:
                aclose = getattr(events, "aclose", None)
                if aclose is not None:
                    await aclose()
        return dispatched

    async def close_all(self, code: int = CLOSE_SERVICE_RESTART) -> None:
        connections = [c for org in self._organizations.values() for c in org.connections]
        for connection in connections:
            connection.close(code)
        closers = [c._closer for c in connections if c._closer is not None]
        if closers:
            await asyncio.wait(closers)

    def _end_turn(self) -> None:
        connections, self._busy = self._busy, []
        for connection in connections:
            connection._end_turn()

    def _unregister(self, connection: Connection) -> None:
        org = self._organizations.get(connection.organization_id)
        if org is None:
            return
        org.connections = tuple(c for c in org.connections if c is not connection)
        if not org.connections:
            if org.filling is not None:
                org.filling.cancel()
            del self._organizations[connection.organization_id]
