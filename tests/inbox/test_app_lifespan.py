"""The app's start-up and shutdown: what a start-up starts, its stop undoes."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette

from inbox.app import create_app
from inbox.settings import Settings, async_database_url


async def _start_up(app: Starlette) -> dict[str, Any]:
    """Ask the app to start as a server does (ASGI lifespan); the answer it gives."""
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    await inbox.put({"type": "lifespan.startup"})
    task = asyncio.create_task(
        app({"type": "lifespan", "asgi": {"version": "3.0"}}, inbox.get, outbox.put)
    )
    answer = await outbox.get()
    if answer["type"] == "lifespan.startup.complete":
        await inbox.put({"type": "lifespan.shutdown"})
        await outbox.get()
    # Starlette raises the start-up's error again after telling the server.
    await asyncio.gather(task, return_exceptions=True)
    return answer


async def test_a_failed_start_up_stops_what_it_started_and_can_be_tried_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    database = Path(tempfile.mkdtemp(prefix="inbox-lifespan-")) / "inbox.db"
    app = create_app(
        Settings(
            env="test",
            database_url=async_database_url(f"sqlite:///{database}"),
            secret_key="s" * 32,
            redis_url=None,
        )
    )

    async def broker_down() -> None:
        raise ConnectionError("the broker does not answer")

    # The live part starts after the group commit, the HTTP client and the workers.
    monkeypatch.setattr(app.state.inbox.live, "start", broker_down)
    before = asyncio.all_tasks()
    for _ in range(2):
        answer = await _start_up(app)
        assert answer["type"] == "lifespan.startup.failed"
        assert "the broker does not answer" in answer["message"]
        assert asyncio.all_tasks() == before
