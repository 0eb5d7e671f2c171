"""``/asyncapi.json`` names the server a client actually reaches, not a fixed localhost."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from support import LiveServer

from inbox.app import create_app
from tests.inbox.conftest import make_settings


def server_of(r: httpx.Response) -> dict[str, Any]:
    assert r.status_code == 200, r.text
    [server] = r.json()["servers"].values()
    return server  # type: ignore[no-any-return]


def test_without_a_public_url_the_server_is_the_requested_host(service):
    server = server_of(service.client().get("/asyncapi.json"))
    assert server["host"] == service.url.removeprefix("http://")
    assert server["protocol"] == "ws"
    assert server["pathname"] == "/"


def test_the_host_header_names_the_server(service):
    r = service.client().get("/asyncapi.json", headers={"Host": "inbox.example.com:8443"})
    assert server_of(r)["host"] == "inbox.example.com:8443"


def test_https_at_a_trusted_proxy_makes_it_wss(service):
    # The test server's uvicorn trusts 127.0.0.1 as a proxy, as `inbox serve` does.
    r = service.client().get(
        "/asyncapi.json",
        headers={"Host": "inbox.example.com", "X-Forwarded-Proto": "https"},
    )
    assert server_of(r) == {"host": "inbox.example.com", "protocol": "wss", "pathname": "/"}


def test_each_host_gets_its_own_document_however_many_there_are(service):
    client = service.client()
    hosts = [f"h{i}.example.com" for i in range(40)]
    for _ in range(2):
        for host in hosts:
            r = client.get("/asyncapi.json", headers={"Host": host})
            assert server_of(r)["host"] == host
    # The rest of the document does not depend on the host.
    a = client.get("/asyncapi.json", headers={"Host": "a.example.com"}).json()
    b = client.get("/asyncapi.json", headers={"Host": "b.example.com"}).json()
    a.pop("servers"), b.pop("servers")
    assert a == b


@pytest.fixture()
def public_server(request: pytest.FixtureRequest, database_url: str, loop: Any) -> Iterator[str]:
    settings = make_settings(database_url, public_url=request.param)
    # Serving the document needs nothing the lifespan starts.
    server = LiveServer(create_app(settings), loop, lifespan="off")
    server.start()
    yield server.url
    server.stop()


@pytest.mark.parametrize(
    ("public_server", "expected"),
    [
        ("https://inbox.example.com", {"host": "inbox.example.com", "protocol": "wss",
                                       "pathname": "/"}),
        ("http://10.0.0.5:8000/", {"host": "10.0.0.5:8000", "protocol": "ws", "pathname": "/"}),
        ("https://example.com/inbox", {"host": "example.com", "protocol": "wss",
                                       "pathname": "/inbox"}),
    ],
    indirect=["public_server"],
)
def test_a_public_url_names_the_server_whatever_the_request_says(public_server, expected):
    with httpx.Client(base_url=public_server) as client:
        assert server_of(client.get("/asyncapi.json")) == expected
        r = client.get("/asyncapi.json",
                       headers={"Host": "elsewhere.example", "X-Forwarded-Proto": "http"})
        assert server_of(r) == expected
