"""INBOX_WS_DIRECT_FRAMES: events written to uvicorn's transport as frames (the default),
or every frame through ASGI `send`; clients get the same either way."""

from __future__ import annotations

from typing import Any

from tests.inbox.conftest import Service
from tests.inbox.live.wsclient import (
    consecutive,
    extra_service,
    frames_until,
    ids_of,
    live_of,
    of_type,
    open_ws,
    ready,
    rest,
)


async def leads_arrive(service: Service) -> list[bool]:
    """Three leads created over REST reach a socket in order; answer whether the
    organization's sockets took their frames directly."""
    tenant = service.new_tenant()
    token = service.token_for(tenant.owner)
    async with await open_ws(service.url, token) as ws, rest(service.url, token) as api:
        start = (await ready(ws))["last_event_id"]
        for n in range(3):
            created = await api.post("/api/leads", json={"name": f"Lead {n}"})
            assert created.status_code == 201, created.text

        def last_lead(frame: dict[str, Any]) -> bool:
            return frame.get("type") == "lead.created" and frame["data"]["name"] == "Lead 2"

        frames = await frames_until(ws, last_lead)
        ids = ids_of(frames)
        assert consecutive(ids) and ids[0] == start + 1
        leads = of_type(frames, "lead.created")
        assert [f["data"]["name"] for f in leads] == ["Lead 0", "Lead 1", "Lead 2"]
        return [c.direct for c in live_of(service).hub.connections(tenant.org_id)]


async def test_by_default_events_are_written_to_the_transport_as_frames(service):
    assert await leads_arrive(service) == [True]


async def test_switched_off_events_go_through_asgi_send(database_url, loop):
    with extra_service(database_url, loop, ws_direct_frames=False) as service:
        assert await leads_arrive(service) == [False]
