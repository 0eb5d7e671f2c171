"""A status that arrives before the service recorded the platform id of its own reply
is applied once the id is recorded; one about a message we never sent changes nothing."""

from __future__ import annotations

from typing import Any

from sqlmodel import col

from inbox.models import PendingStatus
from tests.connectors.fake_platform import Reply, slow
from tests.inbox.live.wsclient import drain, frames_until, open_ws, ready, rest, stored
from tests.inbox.platforms import (
    meta_headers,
    rows,
    unique_digits,
    whatsapp_channel,
    whatsapp_status,
    whatsapp_text,
)


async def post(api: Any, body: bytes, secret: str) -> dict[str, Any]:
    r = await api.post("/webhooks/whatsapp", content=body, headers=meta_headers(body, secret))
    assert r.status_code == 200, r.text
    return dict(r.json())


async def customer_wrote_in(api: Any, channel: Any) -> dict[str, Any]:
    """The conversation a customer's first message on ``channel`` opened."""
    await post(api, whatsapp_text(channel, f"wamid.in{unique_digits(9)}", "Hi"), channel.secret)
    conversations = (await api.get("/api/conversations",
                                   params={"channel_id": channel.id})).json()["data"]
    [conversation] = [c for c in conversations if c["channel_id"] == channel.id]
    return dict(conversation)


async def test_a_delivered_status_before_the_send_answer_is_applied_after_it(
    service, tenant, platform
):
    channel = whatsapp_channel(tenant)
    token = service.token_for(tenant.owner)
    wamid = f"wamid.EARLY{unique_digits(9)}"
    async with await open_ws(service.url, token) as ws, rest(service.url, token) as api:
        await ready(ws)
        conversation = await customer_wrote_in(api, channel)
        # The platform takes its time answering the send; its status webhook does not wait.
        platform.enqueue(slow(2.0, Reply(200, {"messaging_product": "whatsapp",
                                               "messages": [{"id": wamid}]})))
        r = await api.post(f"/api/conversations/{conversation['id']}/messages",
                           json={"content": "On its way"})
        assert r.status_code == 201, r.text
        reply = r.json()
        early = await post(api, whatsapp_status(channel, wamid, "delivered"), channel.secret)
        assert (early["stored"], early["updated"], early["ignored"]) == (0, 0, 1)
        again = await post(api, whatsapp_status(channel, wamid, "delivered"), channel.secret)
        assert again["updated"] == 0

        frames = stored(await frames_until(
            ws, lambda f: f["type"] == "message.status" and f["data"]["status"] == "delivered",
            timeout=30))
        frames += stored(await drain(ws))
        shown = (await api.get(f"/api/conversations/{conversation['id']}/messages")).json()
    statuses = [f["data"] for f in frames if f["type"] == "message.status"]
    assert [(s["id"], s["status"]) for s in statuses] == [
        (reply["id"], "sent"), (reply["id"], "delivered")]
    assert statuses[-1]["external_id"] == wamid
    assert (shown["data"][-1]["id"], shown["data"][-1]["status"]) == (reply["id"], "delivered")


async def test_a_status_of_a_message_sent_elsewhere_is_acknowledged_and_changes_nothing(
    service, tenant
):
    channel = whatsapp_channel(tenant)
    token = service.token_for(tenant.owner)
    async with await open_ws(service.url, token) as ws, rest(service.url, token) as api:
        await ready(ws)
        answer = await post(api, whatsapp_status(channel, "wamid.ELSEWHERE", "read"),
                            channel.secret)
        assert stored(await drain(ws)) == []
    assert (answer["stored"], answer["updated"], answer["ignored"]) == (0, 0, 1)


async def test_a_status_kept_while_its_send_was_being_recorded_is_applied_by_the_sweep(
    service, tenant, platform
):
    # Two transactions that cannot see each other: the status webhook keeps the status
    # (no message has the id yet) while the worker records the id (no status kept yet).
    # Both commit; the status is found and applied a few seconds later.
    channel = whatsapp_channel(tenant)
    token = service.token_for(tenant.owner)
    wamid = f"wamid.RACE{unique_digits(9)}"
    async with await open_ws(service.url, token) as ws, rest(service.url, token) as api:
        await ready(ws)
        conversation = await customer_wrote_in(api, channel)
        platform.enqueue(Reply(200, {"messaging_product": "whatsapp",
                                     "messages": [{"id": wamid}]}))
        r = await api.post(f"/api/conversations/{conversation['id']}/messages",
                           json={"content": "On its way"})
        reply = r.json()
        await frames_until(ws, lambda f: f["type"] == "message.status"
                           and f["data"]["status"] == "sent")

        async def kept_as_the_losing_transaction_left_it() -> None:
            async with service.db.session() as session:
                session.add(PendingStatus(channel_id=channel.id, external_id=wamid,
                                          status="read"))
                await session.commit()

        service.run(kept_as_the_losing_transaction_left_it())
        frames = await frames_until(
            ws, lambda f: f["type"] == "message.status" and f["data"]["status"] == "read",
            timeout=30)
    [read] = [f["data"] for f in frames if f["type"] == "message.status"]
    assert (read["id"], read["external_id"]) == (reply["id"], wamid)
    assert rows(service, PendingStatus, col(PendingStatus.external_id) == wamid) == []
