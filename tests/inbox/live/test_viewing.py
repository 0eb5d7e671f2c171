"""Who else has a conversation open: a `viewing` frame becomes a live `viewing` event
for the organization's other sockets, like typing, and is refused for a conversation
the organization does not have."""

from __future__ import annotations

from tests.inbox.live.wsclient import answer, drain, frames_until, of_type, open_ws, ready, send


async def test_viewing_reaches_colleagues_but_not_another_organization(
    service, tenant, other_tenant
):
    conv = tenant.conversation()
    theirs = other_tenant.conversation()
    agent, _ = tenant.user("agent")
    colleague, _ = tenant.user("agent")
    stranger, _ = other_tenant.user("agent")
    async with (
        await open_ws(service.url, service.token_for(agent)) as viewer,
        await open_ws(service.url, service.token_for(colleague)) as other,
        await open_ws(service.url, service.token_for(stranger)) as outsider,
    ):
        viewer_id = (await ready(viewer))["connection_id"]
        for ws in (other, outsider):
            await ready(ws)
        for ws in (viewer, other, outsider):
            await drain(ws)

        await send(viewer, {"type": "viewing", "conversation_id": conv.id})
        [seen] = of_type(await frames_until(other, lambda f: f["type"] == "viewing"), "viewing")
        assert seen["data"] == {
            "conversation_id": conv.id, "user_id": agent.id, "connection_id": viewer_id
        }
        assert "id" not in seen
        assert of_type(await drain(outsider), "viewing") == []
        assert of_type(await drain(viewer), "viewing") == []

        await send(viewer, {"type": "viewing", "conversation_id": theirs.id})
        assert await answer(viewer) == {
            "type": "error", "code": "RESOURCE_NOT_FOUND",
            "message": f"Conversation {theirs.id} not found",
        }
        await send(viewer, {"type": "viewing", "conversation_id": "1"})
        refused = await answer(viewer)
        assert (refused["type"], refused["code"]) == ("error", "INVALID_FRAME")
        assert of_type(await drain(other), "viewing") == []
