"""Callbacks due later on the running loop, all called off at once when their owner
stops: none runs after ``close``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class Timers:
    def __init__(self) -> None:
        self._handles: set[asyncio.TimerHandle] = set()
        self.closed = False

    def later(self, delay: float, callback: Callable[[], object]) -> asyncio.TimerHandle | None:
        """Run ``callback`` in ``delay`` seconds (now, when negative); None once closed."""
        if self.closed:
            return None
        handle: asyncio.TimerHandle

        def due() -> None:
            self._handles.discard(handle)
            callback()

        handle = asyncio.get_running_loop().call_later(max(delay, 0.0), due)
        self._handles.add(handle)
        return handle

    def __len__(self) -> int:
        return len(self._handles)

    def close(self) -> None:
        self.closed = True
        for handle in self._handles:
            handle.cancel()
        self._handles.clear()
