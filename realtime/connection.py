"""One client's connection: its filters, its state, its bounded queue, eviction and closing.

A connection starts STARTING: its prelude (session.ready, then any replay) runs in a
task while the events handed to it wait in its queue. Then it is live, QUEUED (a task
sends each queued event through the server's ASGI `send`) or DIRECT (each event's frame
is written to the transport as it comes; see `writers`). Once the server closes it or
its peer leaves it is CLOSING: nothing more is sent. `finish` makes it CLOSED.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import secrets
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from .counters import HubCounters
from .envelope import Envelope
from .metrics import CONNECTIONS_OPEN, EVICTED_QUEUE, EVICTED_UNSENT, EVICTIONS
from .writers import DirectWriter, TurnEnd, send_queued

logger = logging.getLogger(__name__)

_EVICTIONS = {reason: EVICTIONS.labels(reason) for reason in (EVICTED_QUEUE, EVICTED_UNSENT)}

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


class State(enum.Enum):
    STARTING = "starting"
    QUEUED = "queued"
    DIRECT = "direct"
    CLOSING = "closing"
    CLOSED = "closed"


class ConnectionStateError(RuntimeError):
    """A connection was asked for something its state does not allow."""

    def __init__(self, action: str, state: State) -> None:
        super().__init__(f"cannot {action} in state {state.value}")
        self.state = state


@dataclass(frozen=True, slots=True)
class Limits:
    # Past either bound of its queue, or that many bytes unsent on its transport, a
    # connection is evicted: a slow client must not hold the others back or grow memory.
    max_queue_messages: int = 1024
    max_queue_bytes: int = 1 << 20
    # How long a graceful close may take before the socket is dropped.
    close_timeout: float = 5.0


class EventQueue:
    """A connection's events waiting for its socket, counted in events and in bytes."""

    __slots__ = ("_events", "_ready", "bytes")

    def __init__(self) -> None:
        self._events: deque[Envelope] = deque()
        self._ready = asyncio.Event()
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._events)

    def push(self, envelope: Envelope) -> None:
        self._events.append(envelope)
        self.bytes += len(envelope.frame)
        self._ready.set()

    def pop(self) -> Envelope:
        envelope = self._events.popleft()
        self.bytes -= len(envelope.frame)
        return envelope

    def drop_through(self, id: int) -> None:
        """Drop the stored events with an id up to `id`: the prelude sent them already."""
        kept = [e for e in self._events if e.id is None or e.id > id]
        if len(kept) != len(self._events):
            self._events = deque(kept)
            self.bytes = sum(len(e.frame) for e in kept)

    def clear(self) -> None:
        self._events.clear()
        self.bytes = 0

    async def wait(self) -> None:
        """Until something is pushed."""
        self._ready.clear()
        await self._ready.wait()


def _ignore(envelope: Envelope) -> None:
    """Where events go once a connection is closing."""


class Connection:
    """One client: what it subscribed to, and how its events reach it."""

    __slots__ = (
        "_closer",
        "_counters",
        "_limits",
        "_queue",
        "_state",
        "_task",
        "_turn",
        "_unregister",
        "_writer",
        "close_code",
        "conversation_ids",
        "deliver",
        "events",
        "id",
        "live_after",
        "organization_id",
        "socket",
        "subject",
    )

    def __init__(
        self,
        socket: Socket,
        organization_id: int,
        *,
        events: frozenset[str] | None,
        conversation_ids: frozenset[int] | None,
        subject: str | None,
        limits: Limits,
        counters: HubCounters,
        turn: TurnEnd,
        unregister: Callable[[Connection], None],
    ) -> None:
        self.socket = socket
        self.id = secrets.token_urlsafe(12)
        self.organization_id = organization_id
        # None means "everything" in that dimension.
        self.events = events
        self.conversation_ids = conversation_ids
        # Who holds it (the application's words, e.g. "user:5"), so it can be revoked.
        self.subject = subject
        # Stored events with an id up to this one came in the prelude or predate the
        # connection; the live stream starts after it. None until the prelude is done.
        self.live_after: int | None = None
        # Set when the server closed it; None while open or when the peer left.
        self.close_code: int | None = None
        # Hands it an event: queue it, write its frame, or (closing) ignore it.
        self.deliver: Callable[[Envelope], None] = self._enqueue
        self._state = State.STARTING
        self._queue = EventQueue()
        self._limits = limits
        self._counters = counters
        self._turn = turn
        self._unregister = unregister
        self._writer: DirectWriter | None = None
        # Runs the prelude, then (QUEUED) sends the queue; done once DIRECT.
        self._task: asyncio.Task[None] | None = None
        self._closer: asyncio.Task[None] | None = None

    @property
    def state(self) -> State:
        return self._state

    @property
    def closing(self) -> bool:
        """Nothing more is sent to it."""
        return self._state is State.CLOSING or self._state is State.CLOSED

    @property
    def direct(self) -> bool:
        """Whether events are written straight to the transport (live, frame-taking)."""
        return self._state is State.DIRECT

    def wants(self, envelope: Envelope) -> bool:
        """Whether this client is to get the event: its filters, and not twice."""
        events = self.events
        if events is not None and envelope.type not in events:
            return False
        conversations = self.conversation_ids
        if conversations is not None:
            conversation_id = envelope.conversation_id
            if conversation_id is not None and conversation_id not in conversations:
                return False
        id = envelope.id
        if id is None:
            # An ephemeral event is not sent back to the connection that caused it.
            return envelope.source != self.id
        live_after = self.live_after
        return live_after is None or id > live_after

    def start(self, prelude: Callable[[], Awaitable[int]]) -> None:
        """Run `prelude`, which sends what comes first and returns `live_after`; then
        go live."""
        if self._state is not State.STARTING or self._task is not None:
            raise ConnectionStateError("start", self._state)
        self._task = asyncio.get_running_loop().create_task(
            self._run(prelude), name=f"realtime-connection-{self.id}"
        )

    async def send_now(self, envelope: Envelope) -> None:
        """Send and wait: for the prelude, ahead of everything queued."""
        if self.closing:
            return
        if self._state is not State.STARTING:
            raise ConnectionStateError("send_now", self._state)
        await self.socket.send_text(envelope.text)

    def send(self, envelope: Envelope) -> None:
        """A frame for this connection alone (pong, error, ...), after what it was handed."""
        self.deliver(envelope)

    def close(self, code: int) -> None:
        """Close from the server side; never waits, safe to call from dispatch."""
        if self.closing:
            return
        if self._writer is not None:
            # What it was handed before goes out before the close frame.
            self._writer.flush()
            if self.closing:  # the write found the peer gone, or evicted it
                return
        self._stop(code)
        self._closer = asyncio.get_running_loop().create_task(
            self._close_socket(code), name=f"realtime-close-{self.id}"
        )

    async def closed(self) -> None:
        """Until the close the server started is done: the close frame sent, or the
        socket dropped."""
        if self._closer is not None:
            await asyncio.wait([self._closer])

    async def finish(self) -> None:
        """The connection is over (the peer left, or the server closed it): clean up."""
        if self._state is State.CLOSED:
            raise ConnectionStateError("finish", self._state)
        if not self.closing:
            self._stop(None)
        if self._task is not None and self._closer is None:
            self._task.cancel()
        pending = [task for task in (self._task, self._closer) if task is not None]
        if pending:
            await asyncio.wait(pending)
        self._state = State.CLOSED
        self._counters.connections_closed += 1
        CONNECTIONS_OPEN.dec()
        # A graceful close can leave a socket that waits forever to flush its buffer to a
        # peer that stopped reading; whatever happened, drop it after the timeout.
        asyncio.get_running_loop().call_later(self._limits.close_timeout, self.socket.abort)

    # What the direct writer reports.

    def write_failed(self, error: Exception) -> None:
        if self.closing:
            return
        if isinstance(error, SocketClosed):
            # The peer is gone; its disconnect, on the way, finishes the connection.
            self._stop(None)
            return
        logger.error("writing to connection %s failed: closing it", self.id, exc_info=error)
        self.close(CLOSE_INTERNAL_ERROR)

    def too_slow(self, why: str, reason: str = EVICTED_QUEUE) -> None:
        if self.closing:
            return
        if self._writer is not None:
            self._writer.discard()
        self._counters.evictions += 1
        _EVICTIONS[reason].inc()
        logger.info(
            "evicting connection %s of organization %s: %s", self.id, self.organization_id, why
        )
        self.close(CLOSE_TOO_SLOW)

    # The rest.

    def _enqueue(self, envelope: Envelope) -> None:
        queue = self._queue
        queue.push(envelope)
        limits = self._limits
        if len(queue) > limits.max_queue_messages or queue.bytes > limits.max_queue_bytes:
            self.too_slow(f"{len(queue)} frames, {queue.bytes} bytes queued")

    async def _run(self, prelude: Callable[[], Awaitable[int]]) -> None:
        try:
            live_after = self.live_after = await prelude()
            if self.closing:
                return
            # Live events queued while the prelude replayed may repeat it.
            self._queue.drop_through(live_after)
            if self.socket.takes_frames:
                self._go_direct()
                return
            self._state = State.QUEUED
            await send_queued(self._queue, self.socket.send_text)
        except SocketClosed:
            # The peer is gone; its disconnect, on the way, finishes the connection.
            if not self.closing:
                self._stop(None)
        except Exception:
            logger.exception("connection %s failed", self.id)
            self.close(CLOSE_INTERNAL_ERROR)

    def _go_direct(self) -> None:
        writer = self._writer = DirectWriter(
            self.socket.write_frame, self, self._turn, self._limits.max_queue_bytes
        )
        self._state = State.DIRECT
        self.deliver = writer.write
        # Nothing else runs until this returns, so nothing is queued meanwhile.
        queue = self._queue
        while queue:
            writer.write(queue.pop())
        self._task = None

    def _stop(self, code: int | None) -> None:
        self._state = State.CLOSING
        self.close_code = code
        self.deliver = _ignore
        self._queue.clear()
        if self._writer is not None:
            self._writer.discard()
        self._unregister(self)

    async def _close_socket(self, code: int) -> None:
        task = self._task
        if task is not None and not task.done():
            # It may be blocked in a send that will never complete.
            task.cancel()
            await asyncio.wait([task])
        try:
            async with asyncio.timeout(self._limits.close_timeout):
                await self.socket.close(code)
        except TimeoutError:
            self._counters.aborted += 1
            logger.info("connection %s did not take its close frame: aborting", self.id)
            self.socket.abort()
        except SocketClosed:
            pass
        except Exception:
            logger.exception("closing connection %s failed: aborting", self.id)
            self.socket.abort()
