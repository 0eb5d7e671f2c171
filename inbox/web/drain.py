"""Graceful draining: on SIGTERM, fail readiness first, stop serving a little later.

A load balancer polling ``/readyz`` sees 503 and stops routing new requests and
WebSockets here before the process closes them (WebSockets get 1012 and resume
elsewhere). A second signal stops at once.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

log = logging.getLogger("inbox.drain")


def delay_exit_signals(on_drain: Callable[[], None], seconds: float) -> None:
    """Wrap the server's SIGTERM/SIGINT handlers so they run ``seconds`` after ``on_drain``."""
    if seconds <= 0 or threading.current_thread() is not threading.main_thread():
        return
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        original = signal.getsignal(sig)
        if not callable(original):
            continue
        started = False

        def handler(signum: int, frame: FrameType | None, original: Any = original) -> None:
            nonlocal started
            if started:
                original(signum, frame)
                return
            started = True
            on_drain()
            log.info("draining for %.1fs before shutting down", seconds)
            loop.call_soon_threadsafe(loop.call_later, seconds, original, signum, frame)

        signal.signal(sig, handler)
