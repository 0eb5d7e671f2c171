"""Requests are counted under the template of the route that answered them."""

from __future__ import annotations

import gc

import httpx
from prometheus_client import REGISTRY
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from inbox.web.middleware import AccessLogMiddleware


async def answer(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


def counted(route: str) -> float:
    labels = {"route": route, "method": "GET", "status": "200"}
    return REGISTRY.get_sample_value("inbox_http_requests_total", labels) or 0.0


async def test_apps_made_one_after_another_count_under_their_own_templates() -> None:
    """Tests and embedders make and drop apps; a new app's route may take the memory of a
    dropped one's, and must not inherit its label."""
    for n in range(40):
        template = f"/route-labels-{n}/{{thing_id}}"
        routes = [Route(f"/route-labels-{n}/{{thing_id:int}}", answer)]
        app = AccessLogMiddleware(Starlette(routes=routes))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://inbox") as client:
            assert (await client.get(f"/route-labels-{n}/7")).status_code == 200

        assert counted(template) == 1, template
        del app, routes, transport, client
        # The young generations hold what this round made; a full collection would
        # walk the whole test process's heap each round.
        gc.collect(1)
