"""The Python client against a real `inbox serve`, one for the session (per worker).

The client is a distribution of its own, not installed in the service's environment:
its sources are put on the path here, as an installed copy would be."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser.server import ConsoleServer
from tests.clients.helpers import CLIENT_SRC
from tests.connectors.fake_platform import FakePlatform

if str(CLIENT_SRC) not in sys.path:
    sys.path.insert(0, str(CLIENT_SRC))


class ClientServer(ConsoleServer):
    """The service with an organization, a WhatsApp channel and an admin's API key."""

    api_key: str

    def __init__(self, workdir: Path, platform: FakePlatform) -> None:
        super().__init__(workdir, platform)
        # The webhook tests register endpoints on loopback.
        self.env["INBOX_WEBHOOK_ALLOW_PRIVATE"] = "true"

    def make_api_key(self, role: str = "admin") -> tuple[int, str]:
        """(its id, the key)."""
        with self.api(self.admin) as admin:
            r = admin.post("/api/api-keys", json={"name": f"client {role}", "role": role})
            assert r.status_code == 201, r.text
            return int(r.json()["id"]), str(r.json()["key"])


@pytest.fixture(scope="session")
def inbox_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClientServer]:
    with FakePlatform() as platform:
        server = ClientServer(tmp_path_factory.mktemp("client"), platform)
        try:
            server.seed()
            server.start()
            server.seed_after_start()
            _, server.api_key = server.make_api_key()
            yield server
        finally:
            server.close()
