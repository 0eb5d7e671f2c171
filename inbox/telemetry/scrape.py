"""``GET /metrics``: the Prometheus text format, for a scraper that proves itself.

With INBOX_METRICS_TOKEN set, a scrape must send ``Authorization: Bearer <token>``;
unset, only a client on the loopback interface may scrape (a Prometheus on the same
host, or one reaching it through a tunnel), and not through a proxy: a reverse proxy on
the same host connects from loopback on behalf of anyone, and says so in its
forwarding headers. Under ``inbox serve --workers N`` the
answer sums every worker's figures (`workers`).
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..errors import error_response
from ..state import AppState
from .workers import MULTIPROCESS_DIR


def _registry() -> CollectorRegistry:
    if os.environ.get(MULTIPROCESS_DIR):
        # Every worker's files in the directory its parent made, this one's included.
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return registry
    return REGISTRY


_FORWARDING = ("forwarded", "x-forwarded-for", "x-real-ip", "x-forwarded-host")


def _forwarded(request: Request) -> bool:
    return any(name in request.headers for name in _FORWARDING)


def _loopback(host: str | None) -> bool:
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def metrics(request: Request) -> Response:
    state: AppState = request.app.state.inbox
    token = state.settings.metrics_token
    expected = token.get_secret_value() if token is not None else ""
    if expected:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), expected.encode()
        ):
            return error_response(
                401, "AUTHENTICATION_FAILED", "GET /metrics needs Authorization: Bearer <token>"
            )
    elif _forwarded(request) or not _loopback(request.client.host if request.client else None):
        return error_response(
            403,
            "AUTHORIZATION_FAILED",
            "Metrics are served to loopback clients only, not through a proxy; set "
            "INBOX_METRICS_TOKEN to scrape from elsewhere",
        )
    return Response(generate_latest(_registry()), media_type=CONTENT_TYPE_LATEST)


routes = [Route("/metrics", metrics, methods=["GET"])]

OPENAPI_PATHS: dict[str, Any] = {
    "/metrics": {
        "get": {
            "operationId": "metrics",
            "summary": "Prometheus metrics (text format). With INBOX_METRICS_TOKEN set, "
            "needs Authorization: Bearer <token>; unset, loopback clients only",
            "tags": ["health"],
            "security": [{"bearerAuth": []}],
            "responses": {
                "200": {"description": "The metrics", "content": {"text/plain": {}}},
                "401": {"description": "Missing or wrong metrics token"},
                "403": {
                    "description": "No token configured and the client is not loopback, "
                    "or came through a proxy"
                },
            },
        }
    }
}
