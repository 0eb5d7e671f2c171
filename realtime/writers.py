"""The two ways a live connection's events reach its socket, side by side.

Queued: a task takes the connection's events from its bounded queue and sends each
through the server's ASGI `send`, waiting for it. Works with any server and socket.

Direct: an event's frame is the same bytes for every recipient, so where the transport
takes encoded frames it is written there at once, with no task and no queue. The first
frame a connection is handed in a turn of the event loop goes out immediately, the
others of that turn together at its end: a burst costs two system calls, not one per
event. What the transport holds unsent is bounded like a queue.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol

from .envelope import Envelope
from .metrics import EVICTED_UNSENT

if TYPE_CHECKING:
    from .connection import EventQueue


async def send_queued(queue: EventQueue, send_text: Callable[[str], Awaitable[None]]) -> None:
    """Send what is queued, in order, as it comes; until cancelled or `send_text` raises."""
    while True:
        while queue:
            await send_text(queue.pop().text)
        await queue.wait()


class WriterOwner(Protocol):
    """What a direct writer reports to: its connection."""

    def write_failed(self, error: Exception) -> None: ...

    def too_slow(self, why: str, reason: str = ...) -> None: ...


class TurnEnd:
    """The direct writers that wrote in this turn of the event loop (`writers`): the first
    of them schedules `end`, which has each write what it held back."""

    __slots__ = ("writers",)

    def __init__(self) -> None:
        self.writers: list[DirectWriter] = []

    def end(self) -> None:
        writers, self.writers = self.writers, []
        for writer in writers:
            writer.turn_ended()


class DirectWriter:
    """Writes one connection's frames to its transport as they come."""

    __slots__ = (
        "_held",
        "_held_bytes",
        "_max_unsent",
        "_owner",
        "_turn",
        "_write_frames",
        "_wrote_this_turn",
    )

    def __init__(
        self,
        write_frames: Callable[[bytes], int],
        owner: WriterOwner,
        turn: TurnEnd,
        max_unsent: int,
    ) -> None:
        """`write_frames` writes bytes now and answers how many the transport holds unsent."""
        self._write_frames = write_frames
        self._owner = owner
        self._turn = turn
        self._max_unsent = max_unsent
        self._wrote_this_turn = False
        # Frames handed after the first of this turn: one, or a list of several.
        self._held: bytes | list[bytes] | None = None
        self._held_bytes = 0

    def write(self, envelope: Envelope) -> None:
        frame = envelope.wire
        if not self._wrote_this_turn:
            self._wrote_this_turn = True
            # Joined here rather than through a method: this runs once per connection and turn.
            writers = self._turn.writers
            if not writers:
                asyncio.get_running_loop().call_soon(self._turn.end)
            writers.append(self)
            self._write_now(frame)
            return
        held = self._held
        if held is None:
            self._held = frame
            self._held_bytes = len(frame)
        elif isinstance(held, bytes):
            self._held = [held, frame]
            self._held_bytes += len(frame)
        else:
            held.append(frame)
            self._held_bytes += len(frame)
        if self._held_bytes > self._max_unsent:
            # No more held in memory than a transport may hold unsent.
            self.flush()

    def turn_ended(self) -> None:
        self._wrote_this_turn = False
        self.flush()

    def flush(self) -> None:
        """Write what was held back, now."""
        held = self._held
        if held is None:
            return
        self._held = None
        self._write_now(held if isinstance(held, bytes) else b"".join(held))

    def discard(self) -> None:
        """Forget what was held back: the connection is closing."""
        self._held = None

    def _write_now(self, frames: bytes) -> None:
        try:
            unsent = self._write_frames(frames)
        except Exception as error:
            self._held = None
            self._owner.write_failed(error)
            return
        if unsent > self._max_unsent:
            self._owner.too_slow(f"{unsent} bytes unsent", EVICTED_UNSENT)
