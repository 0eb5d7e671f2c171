"""The server process: what `inbox serve` sets up beyond the app, and only there."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Callable
from pathlib import Path

from starlette.applications import Starlette

from inbox import migrate
from inbox.app import create_app
from inbox.process import create_served_app
from inbox.settings import Settings, async_database_url
from inbox.web.redaction import RedactQueryFilter
from tests.inbox.conftest import make_settings


def redacting(name: str) -> bool:
    return any(isinstance(f, RedactQueryFilter) for f in logging.getLogger(name).filters)


def settings_for(tmp_path: Path) -> Settings:
    url = async_database_url(f"sqlite:///{tmp_path / 'inbox.db'}")
    migrate.upgrade(url)
    return make_settings(url)


def while_running(app: Starlette, probe: Callable[[], int]) -> int:
    """Start the app as a server does (ASGI lifespan), ask ``probe``, then stop it."""

    async def run() -> int:
        inbox: asyncio.Queue[dict[str, str]] = asyncio.Queue()
        outbox: asyncio.Queue[dict[str, str]] = asyncio.Queue()
        await inbox.put({"type": "lifespan.startup"})
        task = asyncio.create_task(
            app({"type": "lifespan", "asgi": {"version": "3.0"}}, inbox.get, outbox.put)
        )
        assert (await outbox.get())["type"] == "lifespan.startup.complete"
        seen = probe()
        await inbox.put({"type": "lifespan.shutdown"})
        assert (await outbox.get())["type"] == "lifespan.shutdown.complete"
        await task
        return seen

    return asyncio.run(run())


def server_log_filters() -> list[logging.Filterer]:
    return [
        f for name in ("uvicorn.error", "uvicorn.access") for f in logging.getLogger(name).filters
    ]


def test_an_app_alone_leaves_the_process_as_it_was(tmp_path: Path) -> None:
    filters, frozen = server_log_filters(), gc.get_freeze_count()
    assert while_running(create_app(settings_for(tmp_path)), gc.get_freeze_count) == frozen
    assert server_log_filters() == filters


def test_a_served_app_redacts_server_logs_and_freezes_what_start_up_built(tmp_path: Path) -> None:
    gc.unfreeze()
    try:
        app = create_served_app(settings_for(tmp_path))
        assert redacting("uvicorn.error") and redacting("uvicorn.access")
        assert while_running(app, gc.get_freeze_count) > 0
    finally:
        gc.unfreeze()
