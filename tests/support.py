"""Running the real service inside the test process: an event loop thread and uvicorn."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

import httpx
import uvicorn
from servers import free_port

T = TypeVar("T")


class BackgroundLoop:
    """An event loop on its own thread; the server and async test setup both run on it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


class LiveServer:
    """uvicorn serving an ASGI app on 127.0.0.1, on a background loop."""

    def __init__(self, app: Any, loop: BackgroundLoop, **config: Any) -> None:
        self.port = free_port()
        self.loop = loop
        config.setdefault("log_level", "warning")
        config.setdefault("lifespan", "on")
        config.setdefault("ws_per_message_deflate", False)
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, **config)
        )
        self._future: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._future = asyncio.run_coroutine_threadsafe(self.server.serve(), self.loop.loop)
        deadline = 200
        while not self.server.started:
            if self._future.done():
                self._future.result()  # raises what stopped it
                raise RuntimeError("server stopped before starting")
            deadline -= 1
            if deadline == 0:
                raise TimeoutError("server did not start")
            threading.Event().wait(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        if self._future is not None:
            self._future.result(timeout=30)


class Api(httpx.Client):
    """An HTTP client of the running service, optionally authenticated."""

    def __init__(self, base_url: str, token: str | None = None, **kw: Any) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        super().__init__(base_url=base_url, headers=headers, timeout=30, **kw)
