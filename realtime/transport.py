"""The hub's view of one ASGI WebSocket, with a direct path to uvicorn's transport.

ASGI sends a frame as a message: the server encodes the text, builds the frame and
writes it, once per recipient. An event's frame is the same bytes for every recipient
(servers do not mask), so where the server is uvicorn's default WebSocket
implementation and no extension (compression) changes the bytes, the hub writes the
encoded frame to the transport itself. Everything else (the handshake, control frames
from the server, closing) still goes through ASGI, and other servers use ASGI for all.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from starlette.types import Receive, Send

from .hub import SocketClosed

logger = logging.getLogger(__name__)

# The server protocols whose transport takes frames directly.
_FRAME_PROTOCOLS: tuple[type, ...]
try:
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
except ImportError:  # pragma: no cover - another ASGI server, or an older uvicorn
    _FRAME_PROTOCOLS = ()
else:
    _FRAME_PROTOCOLS = (WebSocketsSansIOProtocol,)


class AsgiSocket:
    __slots__ = ("_protocol", "_receive", "_send", "_transport")

    def __init__(self, receive: Receive, send: Send) -> None:
        """Build it once the handshake is accepted: extensions are settled by then."""
        self._receive = receive
        self._send = send
        # uvicorn's ASGI receive is a method of its protocol object.
        protocol: Any = getattr(receive, "__self__", None)
        self._protocol = protocol
        self._transport = _frame_transport(protocol)

    async def send_text(self, text: str) -> None:
        try:
            await self._send({"type": "websocket.send", "text": text})
        except (OSError, RuntimeError) as exc:
            raise SocketClosed from exc

    @property
    def takes_frames(self) -> bool:
        return self._transport is not None

    def write_frame(self, frame: bytes) -> int:
        transport = self._transport
        assert transport is not None, "write_frame() needs takes_frames"
        # After uvicorn sent a close frame (server shutdown) nothing may follow it.
        if transport.is_closing() or self._protocol.close_sent:
            raise SocketClosed
        transport.write(frame)
        return transport.get_write_buffer_size()

    async def close(self, code: int) -> None:
        try:
            await self._send({"type": "websocket.close", "code": code})
        except (OSError, RuntimeError) as exc:
            raise SocketClosed from exc

    def abort(self) -> None:
        # ASGI has no way to drop a connection without flushing it. A peer that stopped
        # reading leaves the server's send waiting for buffer space, and a graceful close
        # waiting to flush, forever. Aborting the protocol's transport frees the socket.
        abort = getattr(getattr(self._protocol, "transport", None), "abort", None)
        if callable(abort):
            abort()
        else:
            logger.warning("cannot abort a stuck WebSocket: the ASGI server hides its transport")


def _frame_transport(protocol: Any) -> asyncio.WriteTransport | None:
    if not isinstance(protocol, _FRAME_PROTOCOLS):
        return None
    server: Any = protocol
    # With compression negotiated, frames differ per connection.
    if server.conn.extensions:
        return None
    transport: asyncio.WriteTransport = server.transport
    return transport
