"""The WebSocket endpoint: handshake checks, the session prelude, and client frames.

Mount it with `WebSocketRoute("/ws", RealtimeEndpoint(...))`. Authentication, the
outbox (for resume) and the typing and presence hooks come from the application.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import orjson
from starlette.requests import HTTPConnection
from starlette.types import Message, Receive, Scope, Send

from .eventlog import EventLog, ReplayTruncated
from .hub import CLOSE_UNAUTHORIZED, Connection, Hub
from .presence import Presence
from .protocol import (
    PONG,
    REPLAY_TRUNCATED,
    ClientFrame,
    FrameError,
    Ping,
    Subscribe,
    Typing,
    Unsubscribe,
    error,
    narrow,
    parse_client_frame,
    parse_event_types,
    session_ready,
    subscription,
    widen,
)
from .transport import AsgiSocket

logger = logging.getLogger(__name__)

CLOSE_POLICY_VIOLATION = 1008
CLOSE_TOO_BIG = 1009


@dataclass(frozen=True)
class Session:
    organization_id: int
    # Echoed to the client in `session.ready`.
    user: dict[str, Any] = field(default_factory=dict)
    # None for API keys: no presence, and typing is up to the hook.
    user_id: int | None = None
    # The socket is closed with 4401 at this moment.
    expires_at: datetime | None = None
    # Names the credential, so `Hub.revoke` can close its connections when it is withdrawn.
    subject: str | None = None


Authenticate = Callable[[HTTPConnection], Awaitable[Session | None]]
# (origin, host header) -> allowed. Called only when the client sends an Origin.
OriginCheck = Callable[[str, str], bool]
# (session, conversation_id, connection_id). Publish an ephemeral `typing` event whose
# data carries "connection_id" so the sender's own connection is skipped. Raise
# FrameError to answer the client with an error frame.
TypingHook = Callable[[Session, int, str], Awaitable[object]]


def same_host(origin: str, host: str) -> bool:
    return urlsplit(origin).netloc.lower() == host.lower()


class RealtimeEndpoint:
    def __init__(
        self,
        *,
        hub: Hub,
        event_log: EventLog,
        authenticate: Authenticate,
        origin_allowed: OriginCheck = same_host,
        on_typing: TypingHook | None = None,
        presence: Presence | None = None,
        max_frame_bytes: int = 64 * 1024,
    ) -> None:
        self._hub = hub
        self._event_log = event_log
        self._authenticate = authenticate
        self._origin_allowed = origin_allowed
        self._on_typing = on_typing
        self._presence = presence
        self._max_frame_bytes = max_frame_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            raise RuntimeError("RealtimeEndpoint serves WebSocket connections only")
        if (await receive())["type"] != "websocket.connect":
            return
        request = HTTPConnection(scope)
        origin = request.headers.get("origin")
        if origin is not None and not self._origin_allowed(origin, request.headers.get("host", "")):
            await _deny(scope, send, 403, "FORBIDDEN", "origin not allowed")
            return
        query = request.query_params
        try:
            events = (parse_event_types(query["events"]) or None) if "events" in query else None
            resume_from = _event_id(query["last_event_id"]) if "last_event_id" in query else None
        except FrameError as exc:
            await _deny(scope, send, 400, "VALIDATION_ERROR", exc.message)
            return
        session = await self._authenticate(request)
        if session is None or _expired(session):
            await _deny(scope, send, 403, "UNAUTHORIZED", "authentication required")
            return

        await send({"type": "websocket.accept"})
        # Registered before anything is read from the outbox: events published from now
        # on wait in the queue, so the replay and the live stream leave no gap.
        connection = self._hub.connect(
            AsgiSocket(receive, send),
            session.organization_id,
            events=events,
            subject=session.subject,
        )
        connection.start(lambda: self._prelude(connection, session, resume_from))
        expiry = _schedule_expiry(connection, session)
        present = False
        try:
            present = await self._join(session)
            await self._serve(connection, session, receive)
        finally:
            if expiry is not None:
                expiry.cancel()
            await connection.finish()
            if present:
                await self._leave(session)

    async def _prelude(
        self, connection: Connection, session: Session, resume_from: int | None
    ) -> int:
        organization_id = session.organization_id
        if resume_from is None:
            latest = self._hub.last_in_order(organization_id)
            if latest is None:
                latest = await self._event_log.latest_id(organization_id)
            await connection.send_now(
                session_ready(connection.id, session.user, organization_id, latest)
            )
            return latest
        await connection.send_now(
            session_ready(connection.id, session.user, organization_id, resume_from)
        )
        last = resume_from
        replayed = 0
        events = self._event_log.after(organization_id, resume_from)
        try:
            async for envelope in events:
                if connection.wants(envelope):
                    await connection.send_now(envelope)
                    replayed += 1
                if envelope.id is not None and envelope.id > last:
                    last = envelope.id
        except ReplayTruncated:
            await connection.send_now(REPLAY_TRUNCATED)
        finally:
            self._hub.counters.replayed += replayed
            aclose = getattr(events, "aclose", None)
            if aclose is not None:
                await aclose()
        return last

    async def _serve(self, connection: Connection, session: Session, receive: Receive) -> None:
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            # After a server-side close, read on only until the disconnect arrives.
            if message["type"] != "websocket.receive" or connection.closing:
                continue
            text = self._text_of(connection, message)
            if text is None:
                continue
            try:
                await self._handle(connection, session, parse_client_frame(text))
            except FrameError as exc:
                connection.send(error(exc.code, exc.message))
            except Exception:
                logger.exception("handling a frame of connection %s failed", connection.id)
                connection.send(error("INTERNAL_ERROR", "the frame could not be handled"))

    def _text_of(self, connection: Connection, message: Message) -> str | None:
        text: str | None = message.get("text")
        if text is None:
            data: bytes = message.get("bytes") or b""
            if len(data) > self._max_frame_bytes:
                connection.close(CLOSE_TOO_BIG)
            else:
                connection.send(error("INVALID_FRAME", "frames must be JSON text"))
            return None
        # Counting characters is enough unless the text could be multi-byte near the limit.
        if len(text) * 4 > self._max_frame_bytes and len(text.encode()) > self._max_frame_bytes:
            connection.close(CLOSE_TOO_BIG)
            return None
        return text

    async def _handle(self, connection: Connection, session: Session, frame: ClientFrame) -> None:
        if isinstance(frame, Ping):
            connection.send(PONG)
        elif isinstance(frame, Subscribe):
            connection.events = narrow(connection.events, frame.events)
            connection.conversation_ids = narrow(
                connection.conversation_ids, frame.conversation_ids
            )
            connection.send(subscription(connection.events, connection.conversation_ids))
        elif isinstance(frame, Unsubscribe):
            if frame.events is None and frame.conversation_ids is None:
                connection.events = connection.conversation_ids = None
            else:
                connection.events = widen(connection.events, frame.events)
                connection.conversation_ids = widen(
                    connection.conversation_ids, frame.conversation_ids
                )
            connection.send(subscription(connection.events, connection.conversation_ids))
        elif isinstance(frame, Typing):
            if self._on_typing is None:
                raise FrameError("UNSUPPORTED", "typing is not enabled")
            await self._on_typing(session, frame.conversation_id, connection.id)

    async def _join(self, session: Session) -> bool:
        if self._presence is None or session.user_id is None:
            return False
        try:
            await self._presence.connect(session.organization_id, session.user_id)
        except Exception:
            logger.exception("presence: recording user %s online failed", session.user_id)
        # Even a failed write is undone on leave: presence repairs its counts itself.
        return True

    async def _leave(self, session: Session) -> None:
        assert self._presence is not None and session.user_id is not None
        try:
            await self._presence.disconnect(session.organization_id, session.user_id)
        except Exception:
            logger.exception("presence: recording user %s offline failed", session.user_id)


def _event_id(value: str) -> int:
    if not value.isdigit() or len(value) > 18:
        raise FrameError("VALIDATION_ERROR", "last_event_id must be a non-negative integer")
    return int(value)


def _expired(session: Session) -> bool:
    return session.expires_at is not None and session.expires_at <= datetime.now(UTC)


def _schedule_expiry(connection: Connection, session: Session) -> asyncio.TimerHandle | None:
    if session.expires_at is None:
        return None
    loop = asyncio.get_running_loop()
    delay = (session.expires_at - datetime.now(UTC)).total_seconds()
    return loop.call_at(loop.time() + max(delay, 0.0), connection.close, CLOSE_UNAUTHORIZED)


async def _deny(scope: Scope, send: Send, status: int, code: str, message: str) -> None:
    """Refuse the handshake with an HTTP response; no frame is ever sent."""
    if "websocket.http.response" in scope.get("extensions", {}):
        body = orjson.dumps({"error": {"code": code, "message": message}})
        await send(
            {
                "type": "websocket.http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        # Closing before accepting makes the server answer 403.
        await send({"type": "websocket.close", "code": CLOSE_POLICY_VIOLATION})
