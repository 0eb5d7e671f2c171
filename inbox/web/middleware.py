"""ASGI middleware: request body limit, and request ids, metrics and an access log that
never shows secrets."""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from starlette.middleware.cors import CORSMiddleware
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import error_body
from ..telemetry.context import request_id, request_id_from
from ..telemetry.metrics import HTTP_DURATION, HTTP_REQUESTS, UNMATCHED
from .redaction import redact_query

access_log = logging.getLogger("inbox.access")


class BodyTooLarge(Exception):
    pass


# Past the limit, the rest of a body is read and thrown away, up to this much more,
# before the 413 goes out: a socket closed with unread data is reset by the kernel,
# and the reset destroys the answer the client has not read yet. Past this bound the
# connection is closed anyway: a client sending that much is not owed the read.
DRAIN_BYTES = 8 * 1024 * 1024

WEBHOOK_PREFIX = "/webhooks/"
# Agents' files are uploaded here, under a limit of their own.
UPLOAD_PATH = "/api/media"
UPLOAD_ENVELOPE_BYTES = 64 * 1024


class BodyLimitMiddleware:
    """Answer 413 for bodies over the limit without keeping them.

    Webhook routes take ``max_webhook_bytes``: platforms document deliveries larger
    than anything the REST API needs (WhatsApp up to 3 MB).
    """

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        max_webhook_bytes: int | None = None,
        drain_bytes: int = DRAIN_BYTES,
        max_upload_bytes: int | None = None,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_webhook_bytes = max_bytes if max_webhook_bytes is None else max_webhook_bytes
        self.max_upload_bytes = max_bytes if max_upload_bytes is None else max_upload_bytes
        self.drain_bytes = drain_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if path.startswith(WEBHOOK_PREFIX):
            limit = self.max_webhook_bytes
        elif path == UPLOAD_PATH:
            limit = self.max_upload_bytes
        else:
            limit = self.max_bytes
        declared = 0
        expects_continue = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
            elif name == b"expect":
                expects_continue = value.lower() == b"100-continue"
        if declared > limit:
            # A client waiting for "100 Continue" has sent no body: refused before it
            # does, it never sends one. (The first receive() would invite it.)
            if not expects_continue and declared - limit <= self.drain_bytes:
                await self._drain(receive)
            await self._reject(send, limit)
            return
        received = 0
        body_complete = False
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received, body_complete
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                body_complete = not message.get("more_body", False)
                if received > limit:
                    raise BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not response_started:
                # Once the whole body is in, another receive() would wait for the
                # client to hang up.
                if not body_complete:
                    await self._drain(receive)
                await self._reject(send, limit)

    async def _drain(self, receive: Receive) -> None:
        """Read what is left of the body, up to ``drain_bytes``, and forget it."""
        drained = 0
        while drained <= self.drain_bytes:
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                return
            drained += len(message.get("body", b""))

    async def _reject(self, send: Send, limit: int) -> None:
        body = error_body("PAYLOAD_TOO_LARGE", f"Request body is larger than {limit} bytes")
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class AccessLogMiddleware:
    """Every request gets an id (X-Request-Id, kept when the client's is well-formed),
    counted in the metrics by its route's template, and one log line with the query
    string's secrets redacted."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        # (route, method, status) -> the counter's child; (route, method) -> the histogram's.
        self._counted: dict[tuple[str, str, int], Any] = {}
        self._timed: dict[tuple[str, str], Any] = {}
        # Route (by identity: routes compare by value and do not hash) -> its template.
        # Kept here, not in the module: this app holds its routes, so their ids stay
        # theirs; a dropped app's route may leave its id to another app's.
        self._templates: dict[int, str] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        header = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                header = value
                break
        rid = request_id_from(header)
        request_id.set(rid)
        rid_header = (b"x-request-id", rid.encode())
        status = 0

        async def capture(message: Message) -> None:
            nonlocal status
            kind = message["type"]
            if kind in ("http.response.start", "websocket.http.response.start"):
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), rid_header]
            elif kind == "websocket.accept":
                status = 101
                message["headers"] = [*message.get("headers", ()), rid_header]
            elif kind == "websocket.close" and not status:
                # Closed before accepting: the server answers the handshake with 403.
                status = 403
            await send(message)

        try:
            await self.app(scope, receive, capture)
        except BaseException:
            # Answered (500) by the error handler outside, if at all.
            status = status or 500
            raise
        finally:
            elapsed = time.perf_counter() - started
            route = self._route_template(scope)
            method = scope.get("method", "WS")
            if kind == "http":
                self._count(route, method, status, elapsed)
            if access_log.isEnabledFor(logging.INFO):
                query = scope.get("query_string", b"").decode("latin-1")
                path = scope["path"] + ("?" + redact_query(query) if query else "")
                client = scope.get("client") or ("-", 0)
                duration_ms = round(elapsed * 1000, 1)
                access_log.info(
                    '%s - "%s %s" %s %.1fms',
                    client[0],
                    method,
                    path,
                    status or "-",
                    duration_ms,
                    extra={"route": route, "status": status or None, "duration_ms": duration_ms},
                )

    def _route_template(self, scope: Scope) -> str:
        route = scope.get("route")
        if route is None:
            return UNMATCHED
        template = self._templates.get(id(route))
        if template is None:
            template = self._templates[id(route)] = route_template(route)
        return template

    def _count(self, route: str, method: str, status: int, elapsed: float) -> None:
        counted = self._counted.get((route, method, status))
        if counted is None:
            counted = self._counted[(route, method, status)] = HTTP_REQUESTS.labels(
                route, method, str(status)
            )
        counted.inc()
        timed = self._timed.get((route, method))
        if timed is None:
            timed = self._timed[(route, method)] = HTTP_DURATION.labels(route, method)
        timed.observe(elapsed)


_CONVERTOR = re.compile(r":[a-z]+}")


def route_template(route: Any) -> str:
    """The template of the route that took a request, without convertors
    (``/api/conversations/{conversation_id}``): not its path, whose ids would make a
    label of unbounded values. Paths of no route share one label."""
    path = getattr(route, "path", None)
    if not isinstance(path, str):
        return UNMATCHED
    if isinstance(route, Mount):
        return f"{path}/{{path}}"
    return _CONVERTOR.sub("}", path) or "/"


class ApiCORSMiddleware(CORSMiddleware):
    """CORS for the allowed origins, except on webhook routes: the lead form answers
    its own CORS for any origin (landing pages live anywhere), and would otherwise see
    its preflight refused here whenever INBOX_ALLOWED_ORIGINS is set."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/webhooks/"):
            await self.app(scope, receive, send)
            return
        await super().__call__(scope, receive, send)
