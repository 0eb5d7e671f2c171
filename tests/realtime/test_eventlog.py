"""Reading an event log: the iterator is closed however the reading ends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from realtime.eventlog import close_iterator


def test_a_generator_is_closed_and_a_plain_iterator_is_left_as_it_is() -> None:
    closed: list[bool] = []

    async def generator() -> AsyncIterator[int]:
        try:
            yield 1
            yield 2
        finally:
            closed.append(True)

    class Plain:
        def __aiter__(self) -> Plain:
            return self

        async def __anext__(self) -> int:
            raise StopAsyncIteration

    async def run() -> None:
        events = generator()
        assert await anext(events) == 1
        await close_iterator(events)
        await close_iterator(Plain())

    asyncio.run(run())
    assert closed == [True]
