"""Who may open /ws: bearer JWTs, API keys, single-use tickets and ``?token=``; Origin;
credentials that lapse while connected; and tokens kept out of the logs."""

from __future__ import annotations

import base64
import json
import logging
import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest

from inbox.security import issue_token
from tests.inbox.conftest import SECRET
from tests.inbox.live.wsclient import (
    closed_with,
    events_until,
    extra_service,
    frames_until,
    live_of,
    open_ws,
    ready,
    refusal,
    refused,
    rest,
    stored,
)


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _claims(user: Any, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {"sub": str(user.id), "org": user.organization_id, "role": user.role,
              "iat": now, "exp": now + 3600}
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def bad_credential(kind: str, service: Any, tenant: Any) -> str | None:
    """A credential of ``tenant``'s owner (or one of its users/keys) that must not work."""
    owner = tenant.owner
    if kind == "missing":
        return None
    if kind == "expired":
        return issue_token(user_id=owner.id, organization_id=tenant.org_id, role="owner",
                           key=SECRET, ttl_seconds=-30)
    if kind == "forged":
        # A genuine token's signature over different claims: another organization's user.
        header, _payload, signature = service.token_for(owner).split(".")
        return ".".join([header, _b64(_claims(owner, org=tenant.org_id + 1)), signature])
    if kind == "alg-none":
        return ".".join([_b64({"alg": "none", "typ": "JWT"}), _b64(_claims(owner)), ""])
    if kind == "no-exp":
        return jwt.encode(_claims(owner, exp=None), SECRET, algorithm="HS256")
    if kind == "wrong-secret":
        return jwt.encode(_claims(owner), "another-secret-of-the-same-length!!", "HS256")
    if kind == "deactivated":
        user, _ = tenant.user("agent")
        token = service.token_for(user)
        assert tenant.api.post(f"/api/users/{user.id}/deactivate").status_code == 200
        return token
    if kind == "revoked-key":
        created = tenant.api.post("/api/api-keys", json={"name": "soon revoked"}).json()
        assert tenant.api.delete(f"/api/api-keys/{created['id']}").status_code == 204
        return str(created["key"])
    if kind == "garbage":
        return "not-a-valid-token"
    raise AssertionError(kind)


BAD = ["missing", "expired", "forged", "alg-none", "no-exp", "wrong-secret", "deactivated",
       "revoked-key", "garbage"]

# What the refusal's details say of each; a deleted key is indistinguishable from a made-up one.
REASONS = {"missing": "missing", "expired": "expired", "forged": "invalid",
           "alg-none": "invalid", "no-exp": "invalid", "wrong-secret": "invalid",
           "deactivated": "revoked", "revoked-key": "invalid", "garbage": "invalid"}


@pytest.mark.parametrize("kind", BAD)
async def test_bad_credentials_are_refused_with_403_and_never_get_an_event(
    service, tenant, kind
):
    credential = bad_credential(kind, service, tenant)
    hub = live_of(service).hub
    opened = hub.counters.connections_opened
    async with await open_ws(service.url, service.token_for(tenant.owner)) as watcher:
        await ready(watcher)
        assert await refused(service.url, credential) == 403
        if credential is not None:
            assert await refused(service.url, query=f"token={credential}") == 403
        # Events keep flowing to the organization, just not to the refused clients.
        lead = tenant.api.post("/api/leads", json={"name": "Still private"}).json()
        [event] = stored(await events_until(watcher, 1))
        assert event["data"] == lead
    # Refused before registration: nothing could ever be queued for them.
    assert hub.counters.connections_opened == opened + 1


@pytest.mark.parametrize("kind", BAD)
async def test_a_refusal_says_why_in_the_words_and_envelope_of_rest(service, tenant, kind):
    credential = bad_credential(kind, service, tenant)
    async with rest(service.url, credential) as api:
        r = await api.get("/api/leads")
    assert r.status_code == 401
    rest_error = r.json()["error"]
    status, error = await refusal(service.url, credential)
    assert status == 403
    assert error == rest_error
    assert error["code"] == "AUTHENTICATION_FAILED"
    reason = REASONS[kind]
    assert error["details"] == {"reason": reason}
    message = error["message"].lower()
    if reason == "missing":
        assert message.startswith("authentication required"), message
    elif reason == "invalid":
        assert message.startswith("invalid"), message
        assert "expired" not in message and "required" not in message
    else:
        assert reason in message, message
    if credential is not None:
        assert await refusal(service.url, query=f"token={credential}") == (403, error)


async def test_a_malformed_authorization_header_is_invalid_not_missing(service, tenant):
    status, error = await refusal(service.url, headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert status == 403
    assert error["code"] == "AUTHENTICATION_FAILED"
    assert error["details"] == {"reason": "invalid"}
    assert "Bearer" in error["message"]


async def test_a_bad_credential_in_a_second_way_is_not_rescued_by_a_good_one(service, tenant):
    # The header is what counts: a broken header next to a valid ?token= is refused.
    good = service.token_for(tenant.owner)
    assert await refused(service.url, query=f"token={good}",
                         headers={"Authorization": "Basic dXNlcjpwYXNz"}) == 403


@pytest.mark.parametrize("how", ["header", "query", "api-key", "x-api-key"])
async def test_valid_credentials_open_a_session(service, tenant, how):
    user, _ = tenant.user("agent")
    token = service.token_for(user)
    key = tenant.api_key()
    ws_args: dict[str, Any] = {
        "header": {"credential": token},
        "query": {"query": f"token={token}"},
        "api-key": {"credential": key},
        "x-api-key": {"headers": {"X-Api-Key": key}},
    }[how]
    async with await open_ws(service.url, **ws_args) as ws:
        session = await ready(ws)
        assert session["organization_id"] == tenant.org_id
        assert session["last_event_id"] == 0
        if how.endswith("api-key"):
            assert session["user"] == {"api_key_id": session["user"]["api_key_id"],
                                       "role": "agent"}
        else:
            assert session["user"] == {"id": user.id, "email": user.email, "name": user.name,
                                       "role": "agent"}
        lead = tenant.api.post("/api/leads", json={"name": "Live"}).json()
        [event] = stored(await events_until(ws, 1))
        assert (event["type"], event["data"]) == ("lead.created", lead)


async def test_a_ticket_opens_one_session_only(service, tenant):
    user, _ = tenant.user("agent")
    async with rest(service.url, service.token_for(user)) as api:
        r = await api.post("/api/realtime/tickets")
    assert r.status_code == 200, r.text
    assert r.json()["expires_in"] == 30
    ticket = r.json()["ticket"]
    async with await open_ws(service.url, query=f"ticket={ticket}") as ws:
        session = await ready(ws)
        assert session["user"]["id"] == user.id
        assert await refused(service.url, query=f"ticket={ticket}") == 403
        lead = tenant.api.post("/api/leads", json={"name": "Ticketed"}).json()
        assert stored(await events_until(ws, 1))[0]["data"] == lead
    # Still used up after the first session ended.
    assert await refused(service.url, query=f"ticket={ticket}") == 403


async def test_an_api_key_gets_a_ticket_too(service, tenant):
    async with rest(service.url, tenant.api_key()) as api:
        ticket = (await api.post("/api/realtime/tickets")).json()["ticket"]
    async with await open_ws(service.url, query=f"ticket={ticket}") as ws:
        assert (await ready(ws))["user"]["role"] == "agent"


def _ticket(tenant: Any, **claims: Any) -> str:
    now = datetime.now(UTC)
    body = {"aud": "inbox:ws", "jti": secrets.token_urlsafe(12), "org": tenant.org_id,
            "sub": str(tenant.owner.id), "iat": now - timedelta(seconds=60),
            "exp": now + timedelta(seconds=30), **claims}
    return jwt.encode(body, SECRET, algorithm="HS256")


async def test_expired_forged_and_misused_tickets_are_refused(service, tenant):
    past = datetime.now(UTC) - timedelta(seconds=5)
    # Sanity: a hand-made ticket like these, only unexpired, is accepted.
    async with await open_ws(service.url, query=f"ticket={_ticket(tenant)}") as ws:
        await ready(ws)
    for ticket in [
        _ticket(tenant, exp=past),
        _ticket(tenant, aud="something-else"),
        jwt.encode({"aud": "inbox:ws", "jti": "x", "org": tenant.org_id,
                    "sub": str(tenant.owner.id), "exp": datetime.now(UTC) + timedelta(seconds=30)},
                   "another-secret-of-the-same-length!!", algorithm="HS256"),
        # An access token is not a ticket.
        service.token_for(tenant.owner),
    ]:
        assert await refused(service.url, query=f"ticket={ticket}") == 403


async def test_a_refused_ticket_says_whether_it_is_used_expired_invalid_or_revoked(
    service, tenant
):
    user, _ = tenant.user("agent")
    async with rest(service.url, service.token_for(user)) as api:
        ticket = (await api.post("/api/realtime/tickets")).json()["ticket"]
        unused = (await api.post("/api/realtime/tickets")).json()["ticket"]
    async with await open_ws(service.url, query=f"ticket={ticket}") as ws:
        await ready(ws)
    status, error = await refusal(service.url, query=f"ticket={ticket}")
    assert (status, error["code"], error["details"]) == (
        403, "AUTHENTICATION_FAILED", {"reason": "invalid"})
    assert "used" in error["message"]

    past = datetime.now(UTC) - timedelta(seconds=5)
    status, error = await refusal(service.url, query=f"ticket={_ticket(tenant, exp=past)}")
    assert (status, error["details"]) == (403, {"reason": "expired"})
    assert "expired" in error["message"].lower()

    forged = jwt.encode({"aud": "inbox:ws", "jti": "x", "org": tenant.org_id,
                         "sub": str(tenant.owner.id), "exp": past},
                        "another-secret-of-the-same-length!!", algorithm="HS256")
    for bad in ["garbage", forged, _ticket(tenant, aud="something-else"),
                service.token_for(tenant.owner)]:
        status, error = await refusal(service.url, query=f"ticket={bad}")
        assert (status, error["details"]) == (403, {"reason": "invalid"}), bad
        assert error["message"].startswith("Invalid ticket"), error

    assert tenant.api.post(f"/api/users/{user.id}/deactivate").status_code == 200
    status, error = await refusal(service.url, query=f"ticket={unused}")
    assert (status, error["details"]) == (403, {"reason": "revoked"})
    assert "revoked" in error["message"].lower()


async def test_a_ticket_of_a_user_deactivated_after_issue_is_refused(service, tenant):
    user, _ = tenant.user("agent")
    async with rest(service.url, service.token_for(user)) as api:
        ticket = (await api.post("/api/realtime/tickets")).json()["ticket"]
    assert tenant.api.post(f"/api/users/{user.id}/deactivate").status_code == 200
    assert await refused(service.url, query=f"ticket={ticket}") == 403


async def test_a_foreign_origin_is_refused_and_the_same_host_allowed(service, tenant):
    token = service.token_for(tenant.owner)
    status, error = await refusal(service.url, token, headers={"Origin": "https://evil.example"})
    assert status == 403
    assert error["code"] == "AUTHORIZATION_FAILED"
    assert error["details"] == {"origin": "https://evil.example"}
    host = service.url.removeprefix("http://")
    async with await open_ws(service.url, token, headers={"Origin": f"http://{host}"}) as ws:
        await ready(ws)


async def test_listed_origins_and_the_services_own_are_the_only_ones_allowed(database_url, loop):
    with extra_service(database_url, loop,
                       allowed_origins=["https://app.example.com"]) as service:
        tenant = service.new_tenant()
        token = service.token_for(tenant.owner)
        host = service.url.removeprefix("http://")
        # The service's own pages (the console) keep their socket beside the listed ones.
        for allowed in ("https://app.example.com", f"http://{host}"):
            async with await open_ws(service.url, token, headers={"Origin": allowed}) as ws:
                await ready(ws)
        for origin in ["https://evil.example", f"https://{host}", "https://app.example.com.evil"]:
            status, error = await refusal(service.url, token, headers={"Origin": origin})
            assert status == 403 and error["code"] == "AUTHORIZATION_FAILED"
            # The client's own Origin, never the configured list.
            assert error["details"] == {"origin": origin}
            assert "app.example.com" not in error["message"]


async def test_a_token_that_expires_while_connected_closes_with_4401(service, tenant):
    token = service.token_for(tenant.owner, ttl=2)
    async with await open_ws(service.url, token) as ws:
        await ready(ws)
        assert await closed_with(ws) == 4401


async def test_the_token_in_the_query_never_reaches_a_log(service, tenant, caplog):
    token = service.token_for(tenant.owner)
    uvicorn_log = logging.getLogger("uvicorn.error")
    uvicorn_log.addHandler(caplog.handler)
    caplog.set_level(logging.INFO, logger="inbox.access")
    caplog.set_level(logging.INFO, logger="uvicorn.error")
    try:
        async with await open_ws(service.url, query=f"token={token}&last_event_id=0") as ws:
            await ready(ws)
        assert await refused(service.url, query="token=not-a-valid-token") == 403
        deadline = time.monotonic() + 10
        while len([r for r in caplog.records
                   if r.name == "inbox.access" and "/ws" in r.getMessage()]) < 2:
            assert time.monotonic() < deadline, "no access log line for the WebSocket"
            time.sleep(0.05)
    finally:
        uvicorn_log.removeHandler(caplog.handler)
    lines = [r.getMessage() for r in caplog.records]
    access = [r.getMessage() for r in caplog.records if r.name == "inbox.access"]
    assert any('"WS /ws?token=[redacted]&last_event_id=0" 101' in line for line in access), access
    assert any('"WS /ws?token=[redacted]" 403' in line for line in access), access
    for line in lines:
        assert token not in line and "not-a-valid-token" not in line, line


async def test_deactivating_a_user_closes_their_open_sockets(service, tenant):
    user, _ = tenant.user("agent")
    colleague, _ = tenant.user("agent")
    async with (
        await open_ws(service.url, service.token_for(user)) as ws,
        await open_ws(service.url, service.token_for(colleague)) as other,
    ):
        await ready(ws)
        await ready(other)
        assert tenant.api.post(f"/api/users/{user.id}/deactivate").status_code == 200
        assert await closed_with(ws) == 4401
        # Only the deactivated user's sockets go; the colleague's stays and gets events.
        tenant.api.post("/api/leads", json={"name": "After"})
        frame = await frames_until(other, lambda f: f["type"] == "lead.created")
        assert frame[-1]["data"]["name"] == "After"


async def test_deleting_an_api_key_closes_the_sockets_it_opened(service, tenant):
    key = tenant.api_key()
    keys = tenant.api.get("/api/api-keys").json()["data"]
    [row] = [k for k in keys if key.startswith(k["prefix"])]
    async with await open_ws(service.url, key) as ws:
        await ready(ws)
        assert tenant.api.delete(f"/api/api-keys/{row['id']}").status_code == 204
        assert await closed_with(ws) == 4401
