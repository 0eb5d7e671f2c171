"""Liveness and readiness for load balancers and orchestrators."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ..disk import unwritable
from ..state import AppState

CHECK_SECONDS = 2


async def livez(_request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    state: AppState = request.app.state.inbox
    if state.draining:
        return JSONResponse({"status": "draining"}, status_code=503)
    checks: dict[str, str] = {}
    try:
        await asyncio.wait_for(state.db.ping(), timeout=CHECK_SECONDS)
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"unavailable: {type(exc).__name__}"
    database_file = state.db.sqlite_file
    if database_file is not None and state.settings.min_free_disk_bytes:
        checks["disk"] = await _disk(database_file, state.settings.min_free_disk_bytes)
    for name, check in state.readiness_checks.items():
        try:
            await asyncio.wait_for(check(), timeout=CHECK_SECONDS)
            checks[name] = "ok"
        except Exception as exc:
            checks[name] = f"unavailable: {type(exc).__name__}"
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "unavailable", "checks": checks},
        status_code=200 if ready else 503,
    )


async def _disk(database_file: Path, min_free: int) -> str:
    """Whether the SQLite database's file system takes writes: SQLite refuses every write
    once it is full ("database or disk is full") or turned read-only, while reads, and
    so the database check, still pass."""
    try:
        usage, refusal = await asyncio.wait_for(
            asyncio.to_thread(_usage, database_file), timeout=CHECK_SECONDS
        )
    except Exception as exc:
        return f"unavailable: {type(exc).__name__}"
    if usage.free < min_free:
        return (
            f"full: {_mib(usage.free)} free for {database_file.name}, "
            f"below {_mib(min_free)} (INBOX_MIN_FREE_DISK_BYTES)"
        )
    return f"unwritable: {refusal}" if refusal else "ok"


def _usage(database_file: Path) -> tuple[Any, str | None]:
    return shutil.disk_usage(database_file.parent), unwritable(database_file)


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"


routes = [
    Route("/livez", livez, methods=["GET"]),
    Route("/healthz", livez, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
]
