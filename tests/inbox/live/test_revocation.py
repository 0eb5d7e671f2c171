"""A socket never outlives the credential it was opened with: ended sessions, keys whose
owner is deactivated, expired keys and expiring tokens behind a ticket close it with
4401, also when the change reaches the database behind the service's back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete
from sqlmodel import col

from inbox.models import ApiKey
from inbox.services import accounts
from realtime.envelope import Envelope
from tests.inbox.live.wsclient import (
    closed_with,
    drain,
    frames_until,
    live_of,
    on_loop,
    open_ws,
    ready,
    refusal,
    rest,
)

PASSWORD = "user-password-1"


async def login(service: Any, email: str) -> str:
    async with rest(service.url) as api:
        r = await api.post("/api/auth/login", json={"email": email, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


async def ticket(service: Any, credential: str) -> dict[str, Any]:
    async with rest(service.url, credential) as api:
        r = await api.post("/api/realtime/tickets")
    assert r.status_code == 200, r.text
    return dict(r.json())


async def still_open(ws: Any) -> None:
    """A ping is answered: the server has not closed the socket."""
    await drain(ws)


async def test_a_password_reset_closes_the_users_sockets(service, tenant):
    user, _ = tenant.user("agent", password=PASSWORD)
    token = await login(service, user.email)
    async with await open_ws(service.url, token) as ws:
        await ready(ws)
        r = tenant.api.patch(f"/api/users/{user.id}", json={"password": "new-password-1"})
        assert r.status_code == 200, r.text
        assert await closed_with(ws) == 4401
    status, error = await refusal(service.url, token)
    assert (status, error["details"]) == (403, {"reason": "revoked"})


async def test_signing_out_everywhere_closes_every_older_socket_and_spares_newer_ones(
    service, tenant
):
    user, _ = tenant.user("agent", password=PASSWORD)
    first, second = await login(service, user.email), await login(service, user.email)
    issued = await ticket(service, first)
    async with (
        await open_ws(service.url, first) as one,
        await open_ws(service.url, second) as two,
        await open_ws(service.url, query=f"ticket={issued['ticket']}") as three,
    ):
        for ws in (one, two, three):
            await ready(ws)
        async with rest(service.url, first) as api:
            assert (await api.post("/api/auth/logout-all")).status_code == 204
        for ws in (one, two, three):
            assert await closed_with(ws) == 4401

    fresh = await login(service, user.email)
    async with await open_ws(service.url, fresh) as ws:
        await ready(ws)
        # What the service checks every few seconds, done now: the new session stands.
        await on_loop(service.loop.loop, live_of(service).recheck())
        await still_open(ws)


async def test_a_ticket_minted_before_the_sessions_ended_is_refused(service, tenant):
    user, _ = tenant.user("agent", password=PASSWORD)
    token = await login(service, user.email)
    issued = await ticket(service, token)
    async with rest(service.url, token) as api:
        assert (await api.post("/api/auth/logout-all")).status_code == 204
    status, error = await refusal(service.url, query=f"ticket={issued['ticket']}")
    assert (status, error["details"]) == (403, {"reason": "revoked"})


async def test_a_ticket_session_ends_with_the_token_it_was_minted_from(service, tenant):
    user, _ = tenant.user("agent")
    issued = await ticket(service, service.token_for(user, ttl=3))
    assert 1 <= issued["expires_in"] <= 3
    async with await open_ws(service.url, query=f"ticket={issued['ticket']}") as ws:
        await ready(ws)
        assert await closed_with(ws) == 4401


async def test_deactivating_a_user_closes_the_sockets_of_the_keys_they_own(service, tenant):
    admin_user, admin = tenant.user("admin")
    owned = admin.post("/api/api-keys", json={"name": "Theirs"}).json()["key"]
    other = tenant.api.post("/api/api-keys", json={"name": "Owner's"}).json()["key"]
    async with (
        await open_ws(service.url, owned) as theirs,
        await open_ws(service.url, other) as owners,
    ):
        await ready(theirs)
        await ready(owners)
        assert tenant.api.post(f"/api/users/{admin_user.id}/deactivate").status_code == 200
        assert await closed_with(theirs) == 4401
        await still_open(owners)
    status, error = await refusal(service.url, owned)
    assert (status, error["details"]) == (403, {"reason": "revoked"})


async def test_a_revocation_never_reaches_a_client_as_an_event(service, tenant):
    created = tenant.api.post("/api/api-keys", json={"name": "Doomed"}).json()
    async with (
        await open_ws(service.url, created["key"]) as doomed,
        await open_ws(service.url, service.token_for(tenant.owner)) as bystander,
    ):
        await ready(doomed)
        await ready(bystander)
        assert tenant.api.delete(f"/api/api-keys/{created['id']}").status_code == 204
        assert await closed_with(doomed) == 4401
        lead = tenant.api.post("/api/leads", json={"name": "After"}).json()
        frames = await frames_until(
            bystander, lambda f: f["type"] == "lead.created" and f["data"]["id"] == lead["id"]
        )
    assert "session.revoked" not in {frame["type"] for frame in frames}


async def test_a_revocation_sent_as_an_event_by_the_previous_release_is_carried_out(
    service, tenant
):
    created = tenant.api.post("/api/api-keys", json={"name": "Doomed"}).json()
    async with (
        await open_ws(service.url, created["key"]) as doomed,
        await open_ws(service.url, service.token_for(tenant.owner)) as bystander,
    ):
        await ready(doomed)
        await ready(bystander)
        # As an older process publishes it during a rolling upgrade: an event, no id.
        said = Envelope.build("session.revoked", tenant.org_id, {"subject": f"key:{created['id']}"})
        await on_loop(service.loop.loop, live_of(service).broker.publish(said))
        assert await closed_with(doomed) == 4401
        lead = tenant.api.post("/api/leads", json={"name": "After"}).json()
        frames = await frames_until(
            bystander, lambda f: f["type"] == "lead.created" and f["data"]["id"] == lead["id"]
        )
    assert "session.revoked" not in {frame["type"] for frame in frames}


async def test_a_transfer_leaves_the_keys_sockets_open(service, tenant):
    _, admin = tenant.user("admin")
    created = admin.post("/api/api-keys", json={"name": "Moving"}).json()
    async with await open_ws(service.url, created["key"]) as ws:
        await ready(ws)
        r = tenant.api.patch(f"/api/api-keys/{created['id']}", json={"owner_id": tenant.owner.id})
        assert r.status_code == 200, r.text
        await still_open(ws)


async def test_a_socket_opened_with_a_key_closes_when_the_key_expires(service, tenant):
    expires_at = datetime.now(UTC) + timedelta(seconds=3)
    created = tenant.api.post(
        "/api/api-keys", json={"name": "Short", "expires_at": expires_at.isoformat()}
    ).json()
    async with await open_ws(service.url, created["key"]) as ws:
        await ready(ws)
        assert await closed_with(ws) == 4401


async def _end_sessions_in_the_database(service: Any, user_id: int) -> None:
    async with service.db.session(write=True) as session:
        await accounts.end_sessions(session, user_id)
        await session.commit()


async def _delete_key_in_the_database(service: Any, key_id: int) -> None:
    async with service.db.session(write=True) as session:
        await session.exec(delete(ApiKey).where(col(ApiKey.id) == key_id))
        await session.commit()


async def test_a_revocation_nobody_announced_closes_sockets_within_seconds(service, tenant):
    # As the command line or an operator's SQL would: nothing is said over the broker.
    user, _ = tenant.user("agent", password=PASSWORD)
    created = tenant.api.post("/api/api-keys", json={"name": "Doomed"}).json()
    async with (
        await open_ws(service.url, await login(service, user.email)) as user_ws,
        await open_ws(service.url, created["key"]) as key_ws,
        await open_ws(service.url, service.token_for(tenant.owner)) as bystander,
    ):
        for ws in (user_ws, key_ws, bystander):
            await ready(ws)
        service.run(_end_sessions_in_the_database(service, user.id))
        service.run(_delete_key_in_the_database(service, created["id"]))
        assert await closed_with(user_ws) == 4401
        assert await closed_with(key_ws) == 4401
        await still_open(bystander)
