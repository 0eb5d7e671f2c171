"""Stand-ins for the hub's tests: sockets that record what they get, logs that replay a
list, and the helpers that start a connection the way the endpoint does."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable

import orjson
from websockets.frames import Frame
from websockets.streams import StreamReader

from realtime import Envelope, Hub, ReplayTruncated
from realtime.hub import Connection, SocketClosed


class FakeSocket:
    """Records what the hub sends; `stuck` models a peer that stopped reading."""

    takes_frames = False

    def __init__(self, *, stuck: bool = False) -> None:
        self.sent: list[str] = []
        self.close_requested: int | None = None
        self.aborted = False
        self._flowing = asyncio.Event()
        if not stuck:
            self._flowing.set()

    async def send_text(self, text: str) -> None:
        await self._flowing.wait()
        self.sent.append(text)

    def write_frame(self, frame: bytes) -> int:
        raise AssertionError("this socket takes no frames")

    async def close(self, code: int) -> None:
        self.close_requested = code
        await self._flowing.wait()

    def abort(self) -> None:
        self.aborted = True

    def types(self) -> list[str]:
        return [orjson.loads(text)["type"] for text in self.sent]

    def ids(self) -> list[int]:
        return [body["id"] for body in map(orjson.loads, self.sent) if "id" in body]


class FrameSocket(FakeSocket):
    """A transport that takes encoded frames; `stuck` ones keep them all unsent."""

    takes_frames = True

    def __init__(self, *, stuck: bool = False) -> None:
        super().__init__(stuck=stuck)
        self.writes: list[bytes] = []
        self.unsent = 0
        self.gone = False

    def write_frame(self, frame: bytes) -> int:
        if self.gone:
            raise SocketClosed
        self.writes.append(frame)
        self.sent.extend(texts_of(frame))
        if not self._flowing.is_set():
            self.unsent += len(frame)
        return self.unsent


class BrokenFrameSocket(FrameSocket):
    """A transport whose writes fail in a way nobody planned for (`broken` set)."""

    def __init__(self) -> None:
        super().__init__()
        self.broken = False

    def write_frame(self, frame: bytes) -> int:
        if self.broken:
            raise AttributeError("'Protocol' object has no attribute 'close_sent'")
        return super().write_frame(frame)


def texts_of(data: bytes) -> list[str]:
    """Decode the server frames of one write as a client would."""
    reader = StreamReader()
    reader.feed_data(data)
    texts = []
    while reader.buffer:
        parser = Frame.parse(reader.read_exact, mask=False)
        try:
            next(parser)
        except StopIteration as done:
            texts.append(str(done.value.data.decode()))
        else:
            raise AssertionError("an incomplete frame")
    return texts


class ListLog:
    """An event log holding `events`; `pause` yields to the loop after each one read."""

    def __init__(
        self, events: list[Envelope], *, truncated: bool = False, pause: bool = False
    ) -> None:
        self.events = events
        self.truncated = truncated
        self.failing = False
        self.pause = pause

    async def latest_id(self, organization_id: int) -> int:
        return max((e.id or 0 for e in self.events), default=0)

    async def after(self, organization_id: int, after_id: int) -> AsyncIterator[Envelope]:
        if self.failing:
            raise ConnectionError("database is down")
        if self.truncated:
            raise ReplayTruncated
        for envelope in self.events:
            if envelope.organization_id == organization_id and (envelope.id or 0) > after_id:
                yield envelope
                if self.pause:
                    await asyncio.sleep(0)


class GatedLog(ListLog):
    """A log whose reads wait for `gate`: events keep arriving while a gap is filled."""

    def __init__(self, events: list[Envelope]) -> None:
        super().__init__(events)
        self.gate = asyncio.Event()

    async def after(self, organization_id: int, after_id: int) -> AsyncIterator[Envelope]:
        await self.gate.wait()
        async for envelope in super().after(organization_id, after_id):
            yield envelope


def event(
    event_id: int | None, type: str = "message.received", org: int = 1, **data: object
) -> Envelope:
    return Envelope.build(type, org, data, id=event_id)


def live(
    hub: Hub,
    socket: FakeSocket,
    org: int = 1,
    live_after: int = 0,
    *,
    events: Iterable[str] | None = None,
    conversation_ids: Iterable[int] | None = None,
) -> Connection:
    """Connect and start a connection whose prelude sent everything up to `live_after`."""
    connection = hub.connect(socket, org, events=events, conversation_ids=conversation_ids)

    async def prelude() -> int:
        return live_after

    connection.start(prelude)
    return connection


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def eventually(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)
