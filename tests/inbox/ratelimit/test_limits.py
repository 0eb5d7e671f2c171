"""Request budgets as a client meets them: the headers on every /api answer, 429 exactly
at the limit, sign-in guessing stopped per e-mail and per address, the lead form per
address, X-Forwarded-For believed only from trusted proxies, and the socket cap."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from support import BackgroundLoop

from inbox.settings import ConfigError, load_settings
from tests.inbox.conftest import Service
from tests.inbox.live.wsclient import closed_with, open_ws, ready
from tests.inbox.ratelimit.budgets import budget, fresh_address, from_address, serve, stop

pytestmark = pytest.mark.backend("sqlite")


@pytest.fixture(scope="module")
def limited(database_url: str, loop: BackgroundLoop) -> Iterator[Service]:
    """Small budgets, behind a proxy on 127.0.0.1 that says who the client is."""
    service, server = serve(
        database_url, loop, trusted_proxies=["127.0.0.1"], max_sockets_per_user=2
    )
    yield service
    stop(service, server)


@pytest.fixture(scope="module")
def exposed(database_url: str, loop: BackgroundLoop) -> Iterator[Service]:
    """Small budgets, facing clients directly: no proxy is trusted."""
    service, server = serve(database_url, loop, trusted_proxies=[])
    yield service
    stop(service, server)


def test_every_api_answer_shows_the_budget(limited):
    tenant = limited.new_tenant()
    anonymous = from_address(limited, fresh_address())
    answers = [
        tenant.api.get("/api/conversations"),
        tenant.api.get("/api/conversations/2147483000"),
        tenant.api.post("/api/contacts", json={"name": 5}),
        anonymous.get("/api/conversations"),
        anonymous.get("/api/no-such-thing"),
    ]
    assert [r.status_code for r in answers] == [200, 404, 422, 401, 404]
    for r in answers:
        limit, remaining, reset = budget(r)
        assert (limit, "retry-after" in r.headers) in ((5, False), (4, False))
        assert 0 <= remaining < limit
        # Unix seconds, within the hour the budget takes to refill.
        assert time.time() - 1 <= reset <= time.time() + 3601


def test_reads_are_refused_exactly_at_the_limit_with_the_error_envelope(limited):
    tenant = limited.new_tenant()
    remaining = [budget(tenant.api.get("/api/contacts"))[1] for _ in range(5)]
    assert remaining == [4, 3, 2, 1, 0]

    refused = tenant.api.get("/api/contacts")
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "RATE_LIMITED"
    assert refused.json()["error"]["details"]["limit"] == 5
    # One request's share of the hour comes back first.
    assert 1 <= int(refused.headers["retry-after"]) <= 720
    assert budget(refused)[:2] == (5, 0)
    # Writes have their own budget, and other credentials theirs.
    assert tenant.api.post("/api/contacts", json={"name": "Still"}).status_code == 201
    _agent, other = tenant.user()
    assert other.get("/api/contacts").status_code == 200


def test_writes_are_refused_past_their_own_limit(limited):
    tenant = limited.new_tenant()
    statuses = [tenant.api.post("/api/contacts", json={"name": f"C{n}"}).status_code
                for n in range(5)]
    assert statuses == [201, 201, 201, 201, 429]


def sign_in(service: Service, email: str, password: str, address: str) -> Any:
    return from_address(service, address).post(
        "/api/auth/login", json={"email": email, "password": password})


def test_password_guessing_stops_per_email_whatever_the_address(limited):
    tenant = limited.new_tenant()
    email = tenant.owner.email
    guesses = [sign_in(limited, email, f"guess {n}", fresh_address()).status_code
               for n in range(3)]
    assert guesses == [401, 401, 401]

    # Even the right password waits: the guesser cannot tell it was right.
    stopped = sign_in(limited, email, "owner-password", fresh_address())
    assert stopped.status_code == 429
    assert stopped.json()["error"]["code"] == "RATE_LIMITED"
    assert int(stopped.headers["retry-after"]) >= 1
    other = limited.new_tenant()
    assert sign_in(limited, other.owner.email, "owner-password", fresh_address()).status_code == 200


def test_password_guessing_stops_per_address_whatever_the_email(limited):
    address = fresh_address()
    tenants = [limited.new_tenant() for _ in range(4)]
    statuses = [sign_in(limited, t.owner.email, "wrong", address).status_code for t in tenants]
    assert statuses == [401, 401, 401, 429]
    # The console's sign-in shares the budget.
    console = from_address(limited, address).post(
        "/api/auth/session", json={"email": tenants[0].owner.email, "password": "x"})
    assert console.status_code == 429
    assert sign_in(limited, tenants[3].owner.email, "owner-password",
                   fresh_address()).status_code == 200


def form_key(tenant: Any) -> str:
    r = tenant.api.post("/api/organization/lead-form-key")
    assert r.status_code == 200, r.text
    return str(r.json()["lead_form_key"])


def test_the_lead_form_is_limited_per_client_address(limited):
    key = form_key(limited.new_tenant())
    address = fresh_address()

    def post(name: str, at: str) -> Any:
        return from_address(limited, at).post(
            "/webhooks/leads/incoming", params={"key": key}, json={"name": name})

    statuses = [post(f"Lead {n}", address).status_code for n in range(4)]
    assert statuses == [201, 201, 201, 429]
    refused = post("Lead 4", address)
    assert refused.json()["error"]["code"] == "RATE_LIMITED"
    assert "retry-after" in refused.headers
    # The landing page that posted it may read why.
    assert refused.headers["access-control-allow-origin"] == "*"
    assert post("Lead from elsewhere", fresh_address()).status_code == 201


def test_a_forwarded_address_from_an_untrusted_peer_is_not_believed(exposed):
    tenants = [exposed.new_tenant() for _ in range(4)]
    # Each attempt claims another address; the peer (127.0.0.1) is what counts.
    statuses = [sign_in(exposed, t.owner.email, "wrong", fresh_address()).status_code
                for t in tenants]
    assert statuses == [401, 401, 401, 429]


def test_a_trusted_proxy_s_own_entry_is_skipped_to_find_the_client(limited):
    address = fresh_address()
    tenants = [limited.new_tenant() for _ in range(4)]
    # A client's forged entry first, then the address the proxies saw, then a proxy.
    forwarded = [f"{fresh_address()}, {address}, 127.0.0.1" for _ in tenants]
    statuses = [
        from_address(limited, f).post(
            "/api/auth/login", json={"email": t.owner.email, "password": "wrong"}).status_code
        for t, f in zip(tenants, forwarded, strict=True)
    ]
    assert statuses == [401, 401, 401, 429]


async def test_one_socket_past_the_cap_is_closed_with_4429(limited):
    tenant = limited.new_tenant()
    token = limited.token_for(tenant.owner)
    first = await open_ws(limited.url, token)
    second = await open_ws(limited.url, token)
    try:
        await ready(first)
        await ready(second)
        third = await open_ws(limited.url, token)
        assert await closed_with(third) == 4429
        assert third.close_reason is not None and "at most 2" in third.close_reason
        # Another user of the organization is not held back.
        other, _api = tenant.user()
        async with await open_ws(limited.url, limited.token_for(other)) as theirs:
            await ready(theirs)
    finally:
        await first.close()
    # A socket closed makes room for one more.
    async with await open_ws(limited.url, token) as again:
        await ready(again)
    await second.close()


@pytest.mark.redis
def test_the_api_answers_while_redis_is_down(database_url, loop, own_redis):
    service, server = serve(database_url, loop, redis_url=own_redis.url)
    try:
        tenant = service.new_tenant()
        assert budget(tenant.api.get("/api/contacts"))[:2] == (5, 4)
        own_redis.stop()
        # Past the limit, unchecked: refusing everyone would make Redis's outage the API's.
        statuses = [tenant.api.get("/api/contacts").status_code for _ in range(6)]
        assert statuses == [200] * 6
    finally:
        stop(service, server)


def test_a_wrong_setting_stops_start_up_naming_the_variable(monkeypatch):
    monkeypatch.setenv("INBOX_ENV", "development")
    monkeypatch.setenv("INBOX_RATE_LIMITS", "read=lots")
    with pytest.raises(ConfigError, match=r"^INBOX_RATE_LIMITS: read=lots: expected a count"):
        load_settings()
    monkeypatch.setenv("INBOX_RATE_LIMITS", "read=10/minute")
    monkeypatch.setenv("INBOX_TRUSTED_PROXIES", "10.0.0.0/8,proxy.local")
    with pytest.raises(ConfigError, match=r"^INBOX_TRUSTED_PROXIES: 'proxy\.local' is not an IP"):
        load_settings()
