"""Where the client's sources are, and waiting on a running server from async tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

CLIENT_SRC = Path(__file__).resolve().parents[2] / "clients" / "python" / "src"


async def until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    """Wait for ``condition``; a deadline only so that a failure ends the test."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise TimeoutError("the condition never held")
        await asyncio.sleep(0.02)
