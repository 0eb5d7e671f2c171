from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.realtime.rt_harness import RealtimeApp, ServerThread


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def backend_url(request: pytest.FixtureRequest) -> str:
    """One test body, both backends."""
    if request.param == "memory":
        return "memory://"
    url: str = request.getfixturevalue("redis_url")
    return url


@pytest.fixture()
def prefix() -> str:
    """Keeps tests sharing one Redis out of each other's channels and keys."""
    return f"test-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[RealtimeApp, ServerThread]]:
    """One app on a real server for a module; tests keep apart by organization."""
    app = RealtimeApp(allowed_origins=("https://app.example",))
    server = ServerThread(app.app).start()
    try:
        yield app, server
    finally:
        server.stop()
