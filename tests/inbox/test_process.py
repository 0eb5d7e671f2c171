"""The server process: what `inbox serve` sets up beyond the app, and only there.

Each check runs in a Python process of its own, as a server would: the collector's
freeze and the logging set-up are process-wide, and an in-process check would also
meet what earlier tests of the same process left behind.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from inbox import migrate
from inbox.settings import async_database_url

ROOT = Path(__file__).resolve().parents[2]

PRELUDE = """
import asyncio, gc, logging
from inbox.settings import Settings
from inbox.web.redaction import RedactQueryFilter

def settings():
    return Settings(env="test", database_url=URL, secret_key="s" * 32, redis_url=None)

def redacting():
    return [
        name for name in ("uvicorn.error", "uvicorn.access")
        if any(isinstance(f, RedactQueryFilter) for f in logging.getLogger(name).filters)
    ]

def while_running(app, probe):
    # Start the app as a server does (ASGI lifespan), ask `probe`, then stop it.
    async def run():
        inbox, outbox = asyncio.Queue(), asyncio.Queue()
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
"""


def in_a_process(tmp_path: Path, check: str) -> None:
    url = async_database_url(f"sqlite:///{tmp_path / 'inbox.db'}")
    migrate.upgrade(url)
    done = subprocess.run(
        [sys.executable, "-c", f"URL = {url!r}\n{PRELUDE}\n{check}"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def test_an_app_alone_leaves_the_process_as_it_was(tmp_path: Path) -> None:
    in_a_process(
        tmp_path,
        """
from inbox.app import create_app
app = create_app(settings())
assert while_running(app, gc.get_freeze_count) == 0
assert redacting() == []
""",
    )


def test_a_served_app_redacts_server_logs_and_freezes_what_start_up_built(tmp_path: Path) -> None:
    in_a_process(
        tmp_path,
        """
from inbox.process import create_served_app
app = create_served_app(settings())
assert redacting() == ["uvicorn.error", "uvicorn.access"]
assert gc.get_freeze_count() == 0
assert while_running(app, gc.get_freeze_count) > 0
""",
    )
