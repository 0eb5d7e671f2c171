"""What the rate-limit tests share: a service with small budgets, fresh client
addresses, and the budget an answer shows."""

from __future__ import annotations

from typing import Any

from support import BackgroundLoop, LiveServer

from inbox.app import create_app
from inbox.db import Database
from tests.inbox.conftest import Service, make_settings

# Per hour: no budget refills while a test runs, however slow the machine.
RATES = "auth=3/hour,read=5/hour,write=4/hour,leads=3/hour,invalid=3/hour"
_addresses = iter(range(1, 1_000_000))


def fresh_address() -> str:
    """An address no other test has spent a budget from."""
    n = next(_addresses)
    return f"198.51.{n // 250}.{n % 250 + 1}"


def serve(database_url: str, loop: BackgroundLoop, **overrides: Any) -> tuple[Service, LiveServer]:
    overrides.setdefault("rate_limits", RATES)
    settings = make_settings(database_url, **overrides)
    app = create_app(settings)
    # Forwarded addresses are left to the service: uvicorn's own reading is off.
    server = LiveServer(app, loop, proxy_headers=False)
    server.start()
    db = Database(database_url)
    return Service(server.url, server.ws_url, settings, db, loop, db.dialect, app=app), server


def stop(service: Service, server: LiveServer) -> None:
    for client in service.clients:
        client.close()
    service.run(service.db.dispose())
    server.stop()


def from_address(service: Service, forwarded: str, **headers: str) -> Any:
    """A client behind the proxy, which says it forwards for ``forwarded``."""
    api = service.client()
    api.headers["X-Forwarded-For"] = forwarded
    api.headers.update(headers)
    return api


def budget(response: Any) -> tuple[int, int, int]:
    h = response.headers
    return int(h["x-ratelimit-limit"]), int(h["x-ratelimit-remaining"]), int(h["x-ratelimit-reset"])
