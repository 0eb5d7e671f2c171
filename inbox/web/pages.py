"""The pages the service serves itself: the agent console at `/`, its files under
`/console/`, the dashboard at `/dashboard` (its files under `/dashboard/`), and the other
static files (the API reference, vendored libraries) under `/static/`. Files come from the
installed package, so a `pip install` serves them."""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

STATIC = Path(__file__).resolve().parent / "static"


class _StaticFiles(StaticFiles):
    """Starlette's static files (ETag, 304, no way out of the folder), revalidated on
    every load: a new release is picked up at once, an unchanged file costs a 304."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.setdefault("Cache-Control", "no-cache")
        return response


def page_routes(static: Path = STATIC) -> list[BaseRoute]:
    console = static / "console"

    async def console_page(_request: Request) -> Response:
        return FileResponse(console / "index.html", headers={"Cache-Control": "no-cache"})

    async def dashboard_page(_request: Request) -> Response:
        # One page for both uses: ?kiosk=1 (the wall screen) is read by its script.
        return FileResponse(
            static / "dashboard" / "index.html", headers={"Cache-Control": "no-cache"}
        )

    async def docs_page(_request: Request) -> Response:
        return FileResponse(static / "docs" / "index.html", headers={"Cache-Control": "no-cache"})

    return [
        Route("/", console_page, methods=["GET", "HEAD"]),
        Route("/docs", docs_page, methods=["GET", "HEAD"]),
        Route("/dashboard", dashboard_page, methods=["GET", "HEAD"]),
        Mount("/console", app=_StaticFiles(directory=console), name="console"),
        Mount("/dashboard", app=_StaticFiles(directory=static / "dashboard"), name="dashboard"),
        Mount("/static", app=_StaticFiles(directory=static), name="static"),
    ]
