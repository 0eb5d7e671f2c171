"""The WebSocket endpoint: handshake checks, the session prelude, and client frames.

Mount it with `WebSocketRoute("/ws", RealtimeEndpoint(...))`. Authentication, the
outbox (for resume), the event types that exist and the typing and presence hooks come
from the application.

A refused handshake is answered with the error envelope of the service's REST API,
`{"error": {"code", "message", "details"}}`, so that a client reads one vocabulary.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import unquote_plus

import orjson
from starlette.requests import HTTPConnection
from starlette.types import Message, Receive, Scope, Send

from .connection import CLOSE_UNAUTHORIZED, Connection
from .envelope import Envelope
from .eventlog import EventLog
from .hub import Hub
from .origins import OriginPolicy
from .prelude import send_prelude
from .presence import Presence
from .protocol import (
    PONG,
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
    subscription,
    unknown_event_types,
    widen,
)
from .transport import AsgiSocket, DirectFrames

logger = logging.getLogger(__name__)

CLOSE_POLICY_VIOLATION = 1008
CLOSE_TOO_BIG = 1009

# The codes of the error envelope; REST answers with the same ones.
AUTHENTICATION_FAILED = "AUTHENTICATION_FAILED"
AUTHORIZATION_FAILED = "AUTHORIZATION_FAILED"
VALIDATION_ERROR = "VALIDATION_ERROR"

# An Origin header is echoed back in the refusal; a long one is not worth repeating.
MAX_ECHOED_ORIGIN = 256
# Likewise a query parameter's name.
MAX_ECHOED_NAME = 64


class HandshakeRefused(Exception):
    """Refuses the handshake with this HTTP status and error envelope.

    `Authenticate` raises it to say why a credential is refused in the application's own
    words, e.g. `HandshakeRefused("AUTHENTICATION_FAILED", "Access token expired",
    {"reason": "expired"})`.
    """

    def __init__(
        self,
        code: str,
        message: str,
        details: Mapping[str, Any] | None = None,
        *,
        status: int = 403,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details: dict[str, Any] = dict(details or {})


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


# None when the request carries no credential at all; raise HandshakeRefused for one that
# is refused, so the client learns whether it is invalid, expired or withdrawn.
Authenticate = Callable[[HTTPConnection], Awaitable[Session | None]]
# (the client's Origin, the origin the handshake was addressed to: its scheme and Host
# header, e.g. "https://inbox.example.com") -> allowed. Called only when the client
# sends an Origin.
OriginCheck = Callable[[str, str], bool]
# (session, conversation_id, connection_id). Publish an ephemeral `typing` (`viewing`)
# event whose data carries "connection_id" so the sender's own connection is skipped.
# Raise FrameError to answer the client with an error frame.
TypingHook = Callable[[Session, int, str], Awaitable[object]]


# No list: only the origin the handshake was addressed to.
same_origin_as_request: OriginCheck = OriginPolicy()


class RealtimeEndpoint:
    def __init__(
        self,
        *,
        hub: Hub,
        event_log: EventLog,
        authenticate: Authenticate,
        origin_allowed: OriginCheck = same_origin_as_request,
        on_typing: TypingHook | None = None,
        on_viewing: TypingHook | None = None,
        presence: Presence | None = None,
        event_types: Collection[str] | None = None,
        max_frame_bytes: int = 64 * 1024,
        direct_frames: bool | DirectFrames = True,
    ) -> None:
        """`event_types`: every type a client may narrow to; None accepts any name.
        `direct_frames`: False sends every frame through ASGI `send`, even where the
        server's transport would take encoded frames (see `transport`)."""
        self._hub = hub
        self._event_log = event_log
        self._authenticate = authenticate
        self._origin_allowed = origin_allowed
        self._on_typing = on_typing
        self._on_viewing = on_viewing
        self._presence = presence
        self._event_types = None if event_types is None else frozenset(event_types)
        self._max_frame_bytes = max_frame_bytes
        if not isinstance(direct_frames, DirectFrames):
            direct_frames = DirectFrames(enabled=direct_frames)
        self.direct_frames = direct_frames

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            raise RuntimeError("RealtimeEndpoint serves WebSocket connections only")
        if (await receive())["type"] != "websocket.connect":
            return
        try:
            session, events, resume_from = await self._admit(HTTPConnection(scope))
        except HandshakeRefused as refusal:
            await _deny(scope, send, refusal)
            return
        events, ignored = self._known_only(events)

        await send({"type": "websocket.accept"})
        # Registered before anything is read from the outbox: events published from now
        # on wait in the queue, so the replay and the live stream leave no gap.
        connection = self._hub.connect(
            AsgiSocket(receive, send, self.direct_frames),
            session.organization_id,
            events=events,
            subject=session.subject,
        )
        connection.start(
            lambda: send_prelude(
                connection,
                hub=self._hub,
                log=self._event_log,
                user=session.user,
                resume_from=resume_from,
                ignored=ignored,
            )
        )
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

    async def _admit(
        self, request: HTTPConnection
    ) -> tuple[Session, frozenset[str] | None, int | None]:
        """(session, `?events=`, `?last_event_id=`), or HandshakeRefused."""
        origin = request.headers.get("origin")
        if origin is not None and not self._origin_allowed(origin, _addressed_to(request)):
            # The client's own Origin only: the allowed list is configuration, not shown.
            raise HandshakeRefused(
                AUTHORIZATION_FAILED,
                "Origin not allowed",
                {"origin": origin[:MAX_ECHOED_ORIGIN]},
            )
        _plain_names_only(request.scope.get("query_string", b""))
        query = request.query_params
        events: frozenset[str] | None = None
        resume_from: int | None = None
        if "events" in query:
            events = _query_field("events", parse_event_types, query["events"]) or None
        if "last_event_id" in query:
            resume_from = _query_field("last_event_id", _event_id, query["last_event_id"])
        session = await self._authenticate(request)
        if session is None:
            raise HandshakeRefused(
                AUTHENTICATION_FAILED, "Authentication required", {"reason": "missing"}
            )
        if _expired(session):
            raise HandshakeRefused(
                AUTHENTICATION_FAILED, "Credentials expired", {"reason": "expired"}
            )
        return session, events, resume_from

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
            self._check_event_types(frame.events)
            connection.events = narrow(connection.events, frame.events)
            connection.conversation_ids = narrow(
                connection.conversation_ids, frame.conversation_ids
            )
            connection.send(subscription(connection.events, connection.conversation_ids))
        elif isinstance(frame, Unsubscribe):
            self._check_event_types(frame.events)
            if frame.events is None and frame.conversation_ids is None:
                connection.events = connection.conversation_ids = None
            else:
                connection.events = widen(connection.events, frame.events)
                connection.conversation_ids = widen(
                    connection.conversation_ids, frame.conversation_ids
                )
            connection.send(subscription(connection.events, connection.conversation_ids))
        elif isinstance(frame, Typing):
            hook = self._on_typing if frame.kind == "typing" else self._on_viewing
            if hook is None:
                raise FrameError("UNSUPPORTED", f"{frame.kind} is not enabled")
            await hook(session, frame.conversation_id, connection.id)

    def _known_only(
        self, events: frozenset[str] | None
    ) -> tuple[frozenset[str] | None, Envelope | None]:
        """`?events=` without the names that are no event type, and the error frame that
        says so. Left out rather than refused: the connection serves the types named
        correctly, and the client reads why the others never come."""
        if events is None or self._event_types is None:
            return events, None
        unknown = events - self._event_types
        if not unknown:
            return events, None
        problem = unknown_event_types(unknown, self._event_types)
        return (events & self._event_types) or None, error(problem.code, problem.message)

    def _check_event_types(self, events: frozenset[str] | None) -> None:
        # The whole frame is refused, so the subscription is never half changed.
        if events is None or self._event_types is None:
            return
        unknown = events - self._event_types
        if unknown:
            raise unknown_event_types(unknown, self._event_types)

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


T = TypeVar("T")


def _query_field(name: str, parse: Callable[[str], T], value: str) -> T:
    """A query parameter, or a 400 with REST's field details."""
    try:
        return parse(value)
    except FrameError as exc:
        problem = {"field": name, "message": exc.message, "type": "value_error"}
        raise HandshakeRefused(
            VALIDATION_ERROR, f"{name}: {exc.message}", {"fields": [problem]}, status=400
        ) from None


def _plain_names_only(query_string: bytes) -> None:
    """Refuse a parameter whose name is spelled with escapes (``tok%65n``): parameters,
    credentials among them, are taken under their exact names only, never under a
    spelling that logs, proxies and filters do not read as the same name."""
    for pair in query_string.split(b"&"):
        name = pair.partition(b"=")[0].decode("latin-1")
        if unquote_plus(name) != name:
            shown = name[:MAX_ECHOED_NAME]
            message = "write the parameter's name without escapes"
            problem = {"field": shown, "message": message, "type": "value_error"}
            raise HandshakeRefused(
                VALIDATION_ERROR, f"{shown}: {message}", {"fields": [problem]}, status=400
            )


def _addressed_to(request: HTTPConnection) -> str:
    """The origin the handshake was addressed to: its scheme (wss:// once TLS ends at a
    trusted proxy) and Host header."""
    scheme = "https" if request.url.scheme in ("wss", "https") else "http"
    return f"{scheme}://{request.headers.get('host', '')}"


def _event_id(value: str) -> int:
    if not value.isdigit() or len(value) > 18:
        raise FrameError(VALIDATION_ERROR, "must be a non-negative integer")
    return int(value)


def _expired(session: Session) -> bool:
    return session.expires_at is not None and session.expires_at <= datetime.now(UTC)


def _schedule_expiry(connection: Connection, session: Session) -> asyncio.TimerHandle | None:
    if session.expires_at is None:
        return None
    loop = asyncio.get_running_loop()
    delay = (session.expires_at - datetime.now(UTC)).total_seconds()
    return loop.call_at(loop.time() + max(delay, 0.0), connection.close, CLOSE_UNAUTHORIZED)


async def _deny(scope: Scope, send: Send, refusal: HandshakeRefused) -> None:
    """Refuse the handshake with an HTTP response; no frame is ever sent."""
    if "websocket.http.response" in scope.get("extensions", {}):
        body = orjson.dumps(
            {
                "error": {
                    "code": refusal.code,
                    "message": refusal.message,
                    "details": refusal.details,
                }
            }
        )
        await send(
            {
                "type": "websocket.http.response.start",
                "status": refusal.status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        # Closing before accepting makes the server answer 403.
        await send({"type": "websocket.close", "code": CLOSE_POLICY_VIOLATION})
