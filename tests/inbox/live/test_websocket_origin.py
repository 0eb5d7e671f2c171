"""A browser's Origin must be the service's own, or a listed one, by scheme, host and
port: an http:// page is not the https:// deployment, nor another port of its host."""

from __future__ import annotations

import pytest

from tests.inbox.live.wsclient import extra_service, open_ws, ready, refusal


async def assert_refused(service, token: str, origin: str, **headers: str) -> None:
    status, error = await refusal(service.url, token, headers={"Origin": origin, **headers})
    assert (status, error["code"]) == (403, "AUTHORIZATION_FAILED"), (origin, error)
    assert error["details"] == {"origin": origin}


async def assert_allowed(service, token: str, origin: str, **headers: str) -> None:
    async with await open_ws(service.url, token, headers={"Origin": origin, **headers}) as ws:
        await ready(ws)


async def test_without_settings_the_origin_is_the_one_the_socket_was_opened_on(service, tenant):
    token = service.token_for(tenant.owner)
    host = service.url.removeprefix("http://")
    port = int(host.rpartition(":")[2])

    await assert_allowed(service, token, f"http://{host}")
    await assert_allowed(service, token, f"http://{host.upper()}")
    await assert_refused(service, token, f"https://{host}")
    await assert_refused(service, token, f"http://127.0.0.1:{port + 1}")
    await assert_refused(service, token, "null")
    # Behind a trusted proxy that ends TLS the socket is wss://, and so must the page be.
    await assert_allowed(service, token, f"https://{host}", **{"X-Forwarded-Proto": "https"})
    await assert_refused(service, token, f"http://{host}", **{"X-Forwarded-Proto": "https"})


@pytest.mark.parametrize("public_url", ["https://inbox.example.com", "https://inbox.example.com/"])
async def test_with_a_public_url_only_its_origin_is_the_services(
    database_url, loop, public_url
):
    with extra_service(database_url, loop, public_url=public_url) as service:
        token = service.token_for(service.new_tenant().owner)
        await assert_allowed(service, token, "https://inbox.example.com")
        await assert_allowed(service, token, "https://inbox.example.com:443")
        await assert_refused(service, token, "http://inbox.example.com")
        await assert_refused(service, token, "https://inbox.example.com:8443")
        # The Host a request names does not make its page the service's.
        host = service.url.removeprefix("http://")
        await assert_refused(service, token, f"http://{host}")
        await assert_refused(service, token, "https://evil.example", Host="evil.example")


async def test_listed_origins_match_by_scheme_host_and_port(database_url, loop):
    listed = ["https://app.example.com", "http://localhost:3000"]
    with extra_service(database_url, loop, allowed_origins=listed) as service:
        token = service.token_for(service.new_tenant().owner)
        for origin in ("https://app.example.com", "https://app.example.com:443",
                       "http://localhost:3000"):
            await assert_allowed(service, token, origin)
        for origin in ("http://app.example.com", "https://app.example.com:8443",
                       "http://localhost:3001", "https://localhost:3000",
                       "https://app.example.com.evil"):
            await assert_refused(service, token, origin)
