"""The hub's view of one ASGI WebSocket, and the one module that reaches into uvicorn.

ASGI sends a frame as a message: the server encodes the text, builds the frame and
writes it, once per recipient. An event's frame is the same bytes for every recipient
(servers do not mask), so on uvicorn's websockets-sansio protocol, where no extension
(compression) changes the bytes, the hub writes the encoded frame to the transport
itself. ASGI also has no way to drop a connection without flushing it, so a stuck one is
dropped by aborting uvicorn's transport. Both read uvicorn's attributes, not an API:
`DirectFrames` probes them once, on the first connection, and whatever it does not
recognise sends every frame through ASGI instead. Everything else (the handshake,
control frames from the server, closing) goes through ASGI always.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from starlette.types import Receive, Send

from .connection import SocketClosed

logger = logging.getLogger(__name__)

_FRAME_PROTOCOL: type | None
_UVICORN_VERSION: str | None
try:
    import uvicorn
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
except ImportError:  # another ASGI server, or a uvicorn without that protocol
    _FRAME_PROTOCOL = _UVICORN_VERSION = None
else:
    _FRAME_PROTOCOL = WebSocketsSansIOProtocol
    _UVICORN_VERSION = uvicorn.__version__


@dataclass(frozen=True)
class VersionRange:
    first: tuple[int, ...]
    below: tuple[int, ...]

    def __contains__(self, version: tuple[int, ...]) -> bool:
        return self.first <= version < self.below

    def __str__(self) -> str:
        return f">={_dotted(self.first)},<{_dotted(self.below)}"


# The uvicorn versions whose private attributes the direct path reads: the
# websockets-sansio protocol has had them since it came (0.35); the upper bound is the
# minor after the newest version tested. Move it only once tests/realtime/
# test_transport.py passes on the new version.
BUILT_FOR: tuple[VersionRange, ...] = (VersionRange((0, 35), (0, 56)),)


def parse_version(text: str) -> tuple[int, ...]:
    """(0, 55, 0) from "0.55.0"; a pre-release counts as its release."""
    return tuple(int(part) for part in re.findall(r"\d+", text.split("+")[0])[:3])


def server_protocol(receive: Receive) -> object | None:
    """The server's object behind a connection: uvicorn's ASGI `receive` is its method."""
    return getattr(receive, "__self__", None)


def probe(
    protocol: object,
    version: str | None = _UVICORN_VERSION,
    built_for: Sequence[VersionRange] = BUILT_FOR,
) -> str | None:
    """Why frames cannot be written to this server protocol's transport; None if they can.

    It checks every attribute the direct path reads, so that a uvicorn that renamed one
    is found here, at the first connection, rather than in the middle of a fan-out.
    """
    if not _is_frame_protocol(protocol):
        name = type(protocol).__name__
        return f"the server's protocol ({name}) is not uvicorn's websockets-sansio"
    if version is None or not any(parse_version(version) in r for r in built_for):
        ranges = " or ".join(str(r) for r in built_for) or "none"
        return f"uvicorn {version} is not a version this was built for ({ranges})"
    transport = getattr(protocol, "transport", None)
    for method in ("write", "is_closing", "get_write_buffer_size", "abort"):
        if not callable(getattr(transport, method, None)):
            return f"uvicorn's protocol has no transport with {method}()"
    if not isinstance(getattr(protocol, "close_sent", None), bool):
        return "uvicorn's protocol has no close_sent flag"
    if not isinstance(getattr(getattr(protocol, "conn", None), "extensions", None), list):
        return "uvicorn's protocol has no conn.extensions list"
    return None


class DirectFrames:
    """Whether this server's WebSockets take encoded frames: probed once, on the first
    connection, unless switched off."""

    def __init__(
        self,
        *,
        enabled: bool = True,
        version: str | None = _UVICORN_VERSION,
        built_for: Sequence[VersionRange] = BUILT_FOR,
    ) -> None:
        self.enabled = enabled
        self._version = version
        self._built_for = tuple(built_for)
        self._probed = False
        # Why not, once probed; None when they do.
        self.refused: str | None = None if enabled else "switched off"

    def transport_of(self, protocol: object) -> asyncio.WriteTransport | None:
        """The transport to write a connection's frames to, if it takes them."""
        if not self._probed:
            self._probed = True
            if self.enabled:
                self.refused = probe(protocol, self._version, self._built_for)
            self._report(protocol)
        if self.refused is not None:
            return None
        server: Any = protocol
        # With compression negotiated, frames differ per connection.
        if server.conn.extensions:
            return None
        transport: asyncio.WriteTransport = server.transport
        return transport

    def _report(self, protocol: object) -> None:
        if self.refused is None:
            logger.info("WebSocket events are written as frames (uvicorn %s)", self._version)
        elif self.enabled and _is_frame_protocol(protocol):
            # The server that could take them has changed: worth a look.
            logger.warning("WebSocket events go through ASGI send: %s", self.refused)
        else:
            logger.info("WebSocket events go through ASGI send: %s", self.refused)


class AsgiSocket:
    __slots__ = ("_protocol", "_send", "_transport")

    def __init__(
        self, receive: Receive, send: Send, direct_frames: DirectFrames | None = None
    ) -> None:
        """Build it once the handshake is accepted: extensions are settled by then."""
        self._send = send
        protocol: Any = server_protocol(receive)
        self._protocol = protocol
        self._transport = None if direct_frames is None else direct_frames.transport_of(protocol)

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
        # A peer that stopped reading leaves the server's send waiting for buffer space,
        # and a graceful close waiting to flush, forever: aborting the transport frees it.
        abort = getattr(getattr(self._protocol, "transport", None), "abort", None)
        if callable(abort):
            abort()
        else:
            logger.warning("cannot abort a stuck WebSocket: the ASGI server hides its transport")


def _is_frame_protocol(protocol: object) -> bool:
    return _FRAME_PROTOCOL is not None and isinstance(protocol, _FRAME_PROTOCOL)


def _dotted(version: tuple[int, ...]) -> str:
    return ".".join(str(part) for part in version)
