"""A cap on the WebSockets one user or API key holds, so that one leaked key cannot hold
thousands. Counted per process (the hub knows its own connections): behind N processes
a credential may hold up to N times the cap.

The endpoint refuses a handshake with an HTTP status, which a browser's WebSocket never
shows its page; past the cap the socket is accepted and closed at once with 4429 and the
reason, which every client can read."""

from __future__ import annotations

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from realtime.endpoint import HandshakeRefused
from realtime.hub import Hub

from ..auth import Principal

CLOSE_TOO_MANY = 4429
REFUSED_STATUS = 429
# A close frame's reason is at most 123 bytes.
MAX_REASON_BYTES = 123


def held_by(hub: Hub, organization_id: int, kind: str, ident: int) -> int:
    """The sockets of this process held by the user or key, whatever session they came
    from (a subject is ``user:7``, ``user:7:epoch:...`` or ``key:3``)."""
    exact = f"{kind}:{ident}"
    prefix = exact + ":"
    return sum(
        1
        for c in hub.connections(organization_id)
        if c.subject is not None and (c.subject == exact or c.subject.startswith(prefix))
    )


def check_socket_cap(hub: Hub, principal: Principal, limit: int) -> None:
    """HandshakeRefused (429, then 4429) when the credential holds ``limit`` already."""
    if principal.user_id is not None:
        held = held_by(hub, principal.organization_id, "user", principal.user_id)
    elif principal.api_key_id is not None:
        held = held_by(hub, principal.organization_id, "key", principal.api_key_id)
    else:
        return
    if held >= limit:
        raise HandshakeRefused(
            "RATE_LIMITED",
            f"Too many sockets: at most {limit} per user or API key",
            {"limit": limit},
            status=REFUSED_STATUS,
        )


class CloseWhenCapped:
    """Turns the endpoint's 429 refusal into an accepted socket closed with 4429."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        refusing = False

        async def closing(message: Message) -> None:
            nonlocal refusing
            kind = message["type"]
            if kind == "websocket.http.response.start" and message["status"] == REFUSED_STATUS:
                refusing = True
                return
            if refusing and kind == "websocket.http.response.body":
                if message.get("more_body", False):
                    return
                reason = _reason(message.get("body", b""))
                await send({"type": "websocket.accept"})
                await send({"type": "websocket.close", "code": CLOSE_TOO_MANY, "reason": reason})
                return
            await send(message)

        # receive goes through untouched: the endpoint finds the server's transport by it.
        await self.app(scope, receive, closing)


def _reason(body: bytes) -> str:
    try:
        message = str(orjson.loads(body)["error"]["message"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        message = "Too many sockets"
    return message.encode()[:MAX_REASON_BYTES].decode("utf-8", "ignore")
