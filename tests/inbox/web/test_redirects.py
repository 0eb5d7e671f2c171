"""A trailing-slash redirect goes to a path on the host the client asked, or under
INBOX_PUBLIC_URL: never to a host named by the request's Host header."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from support import LiveServer

from inbox.app import create_app
from tests.inbox.conftest import make_settings

FORGED = {"Host": "evil.example"}


def test_a_redirect_is_relative_whatever_the_host_header_says(service, tenant):
    r = tenant.api.get("/api/leads/?limit=1", headers=FORGED)

    assert r.status_code == 307
    assert r.headers["location"] == "/api/leads?limit=1"
    # Followed on the host the client asked, it reaches the list, method and all.
    followed = tenant.api.get("/api/leads/?limit=1", follow_redirects=True)
    assert followed.status_code == 200 and followed.json()["pagination"]["limit"] == 1
    created = tenant.api.post("/api/leads/", json={"name": "Slash"}, follow_redirects=True)
    assert created.status_code == 201 and created.json()["name"] == "Slash"
    # Any route, the API's or not; an escaped path is read as the route it names.
    r = service.client().get("/livez/", headers=FORGED)
    assert (r.status_code, r.headers["location"]) == (307, "/livez")
    r = service.client().get("/live%7A/", headers=FORGED)
    assert (r.status_code, r.headers["location"]) == (307, "/livez")


def test_a_path_that_names_nothing_either_way_is_still_a_404(service):
    for path in ("/api/nothing/", "/ws/", "/console/nothing/"):
        r = service.client().get(path, headers=FORGED)
        assert r.status_code == 404, path
        assert "location" not in r.headers
        assert r.json()["error"]["code"] == "RESOURCE_NOT_FOUND"


def test_a_path_that_looks_like_another_host_is_never_sent_there(service):
    # The server reads "//evil.example/" as the root, the console's page: never a
    # redirect a browser would follow to that host.
    r = service.client().get("//evil.example/", headers=FORGED)
    assert "location" not in r.headers
    assert r.status_code in (200, 404)


@pytest.fixture()
def public_server(database_url: str, loop: Any) -> Iterator[str]:
    settings = make_settings(database_url, public_url="https://inbox.example.com/")
    server = LiveServer(create_app(settings), loop, lifespan="off")
    server.start()
    yield server.url
    server.stop()


def test_with_a_public_url_a_redirect_is_built_from_it(public_server):
    with httpx.Client(base_url=public_server) as client:
        for headers in ({}, FORGED, {**FORGED, "X-Forwarded-Proto": "http"}):
            r = client.get("/readyz/?verbose", headers=headers)
            assert r.status_code == 307
            assert r.headers["location"] == "https://inbox.example.com/readyz?verbose"
