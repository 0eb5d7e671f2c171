"""A cap on the WebSockets one user or API key holds, so that one leaked key cannot hold
thousands. Counted per process (each knows only its own sockets): behind N processes a
credential may hold up to N times the cap.

The endpoint refuses a handshake with an HTTP status, which a browser's WebSocket never
shows its page; past the cap the socket is accepted and closed at once with 4429 and the
reason, which every client can read."""

from __future__ import annotations

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from realtime.endpoint import HandshakeRefused

from ..auth import Principal

CLOSE_TOO_MANY = 4429
REFUSED_STATUS = 429
# A close frame's reason is at most 123 bytes.
MAX_REASON_BYTES = 123


# Where the handshake leaves the release of the slot it took, for CloseWhenCapped.
SLOT_KEY = "inbox.socket_slot"


class SocketSlots:
    """The sockets each user or API key holds in this process, counted from the
    handshake that checks the cap to the end of the socket.

    A handshake waits (credentials read, the accept sent) before its socket reaches the
    hub: counting the hub's connections let a burst of handshakes all pass the check.
    A slot is taken in the same step as the count is checked, with no wait between."""

    def __init__(self) -> None:
        self._held: dict[str, int] = {}

    def held(self, principal: Principal) -> int:
        who = _holder(principal)
        return 0 if who is None else self._held.get(who, 0)

    def take(self, scope: Scope, principal: Principal, limit: int) -> None:
        """Take a slot for the socket of ``scope``, released when CloseWhenCapped sees
        the socket end; HandshakeRefused (429, then 4429) when ``limit`` are held."""
        who = _holder(principal)
        if who is None:
            return
        held = self._held.get(who, 0)
        if held >= limit:
            raise HandshakeRefused(
                "RATE_LIMITED",
                f"Too many sockets: at most {limit} per user or API key",
                {"limit": limit},
                status=REFUSED_STATUS,
            )
        self._held[who] = held + 1
        released = False

        def release() -> None:
            nonlocal released
            if released:
                return
            released = True
            left = self._held.get(who, 1) - 1
            if left > 0:
                self._held[who] = left
            else:
                self._held.pop(who, None)

        # A second handshake on one scope (none is made) must not leak the first slot.
        previous = scope.get(SLOT_KEY)
        if previous is not None:
            previous()
        scope[SLOT_KEY] = release


def _holder(principal: Principal) -> str | None:
    """One name for all the sockets of a user (whatever session they came from) or key."""
    if principal.user_id is not None:
        return f"user:{principal.user_id}"
    if principal.api_key_id is not None:
        return f"key:{principal.api_key_id}"
    return None


class CloseWhenCapped:
    """Turns the endpoint's 429 refusal into an accepted socket closed with 4429, and
    gives back the socket's slot when it ends, however it ends."""

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

        try:
            # receive goes through untouched: the endpoint finds the server's transport by it.
            await self.app(scope, receive, closing)
        finally:
            release = scope.get(SLOT_KEY)
            if release is not None:
                release()


def _reason(body: bytes) -> str:
    try:
        message = str(orjson.loads(body)["error"]["message"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        message = "Too many sockets"
    return message.encode()[:MAX_REASON_BYTES].decode("utf-8", "ignore")
