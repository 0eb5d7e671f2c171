"""A fake platform API: a real HTTP server on 127.0.0.1 that records every
request and answers as scripted.

It serves the three send endpoints the adapters call, under any base URL
prefix (use ``base_url`` as the Graph API and the Twilio API base):

- ``POST .../{phone_number_id}/messages`` with a WhatsApp body,
- ``POST .../{account_id}/messages`` with an Instagram body,
- ``POST .../2010-04-01/Accounts/{sid}/Messages.json``,

the Graph API's user profiles, ``GET .../{user_id}?fields=...``, and a WhatsApp
Business Account's message templates, paged (``templates``).

Unscripted requests get the platform's success answer with a fresh id.
Scripted replies (``enqueue``) are used first, in order: rate limits with
``Retry-After``, server errors, slow answers (to trigger client timeouts),
platform errors such as WhatsApp 131047. Profiles are scripted per user id
(``profile``) and never take a send's scripted reply: a service reads them in the
background, at moments a test does not choose.

    with FakePlatform() as platform:
        platform.enqueue(rate_limited(retry_after=2), server_error())
        ...  # send through platform.base_url
        assert platform.requests[-1].json()["to"] == "16505551234"
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.connectors.fake_media import FakeMedia


@dataclass(frozen=True)
class Reply:
    """One scripted answer; ``body`` is sent as JSON unless it is bytes."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass(frozen=True)
class RecordedRequest:
    """A request the fake received, and what it answered."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    status: int
    reply: bytes
    # When it arrived (time.monotonic()), to tell how long a client waited between two.
    received_at: float = 0.0

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, list[str]]:
        return parse_qs(self.body.decode("utf-8"), keep_blank_values=True)

    def reply_json(self) -> Any:
        return json.loads(self.reply) if self.reply else None


def rate_limited(retry_after: float | str = 1, status: int = 429) -> Reply:
    return Reply(
        status=status,
        body={"error": {"message": "Too many requests", "code": 4}},
        headers={"Retry-After": str(retry_after)},
    )


def server_error(status: int = 500) -> Reply:
    return Reply(status=status, body={"error": {"message": "Internal error", "code": 2}})


def slow(delay: float, then: Reply | None = None) -> Reply:
    """Answer ``then`` (default: success) only after ``delay`` seconds."""
    base = then or Reply()
    return Reply(status=base.status, body=base.body, headers=base.headers, delay=delay)


def graph_error(
    code: int,
    message: str,
    details: str | None = None,
    status: int = 400,
    subcode: int | None = None,
) -> Reply:
    """A Graph API error, e.g. ``graph_error(131047, "Re-engagement message", ...)``."""
    error: dict[str, Any] = {
        "message": f"(#{code}) {message}",
        "type": "OAuthException",
        "code": code,
        "fbtrace_id": "AbCdEfGhIjKlMnOpQrStUv",
    }
    if details is not None:
        error["error_data"] = {"messaging_product": "whatsapp", "details": details}
    if subcode is not None:
        error["error_subcode"] = subcode
    return Reply(status=status, body={"error": error})


def whatsapp_outside_window() -> Reply:
    """WhatsApp's answer to a free-form message outside the 24-hour window."""
    return graph_error(
        131047,
        "Re-engagement message",
        "Message failed to send because more than 24 hours have passed since the "
        "customer last replied to this number.",
    )


def instagram_profile(
    user_id: str, name: str | None, username: str | None, profile_pic: str | None = None
) -> Reply:
    """The User Profile API's answer for one Instagram-scoped id."""
    body: dict[str, Any] = {"name": name, "username": username, "id": user_id}
    if profile_pic is not None:
        body["profile_pic"] = profile_pic
    return Reply(body=body)


def no_such_object(user_id: str) -> Reply:
    """The Graph API's answer for an id it cannot read (unknown, or no consent)."""
    return Reply(
        status=400,
        body={
            "error": {
                "message": f"Unsupported get request. Object with ID '{user_id}' does not "
                "exist, cannot be loaded due to missing permissions, or does not support "
                "this operation.",
                "type": "GraphMethodException",
                "code": 100,
                "error_subcode": 33,
                "fbtrace_id": "AbCdEfGhIjKlMnOpQrStUv",
            }
        },
    )


def twilio_error(code: int, message: str, status: int = 400) -> Reply:
    return Reply(
        status=status,
        body={
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
    )


class FakePlatform:
    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self._replies: deque[Reply] = deque()
        self._profiles: dict[str, deque[Reply]] = {}
        # WhatsApp Business Account id -> its message templates, served in pages.
        self._templates: dict[str, tuple[list[dict[str, Any]], int]] = {}
        self._lock = threading.Condition()
        self._ids = itertools.count(1)
        # Attachments' bytes, served as each platform does (fake_media.py).
        self.media = FakeMedia(lambda: self.base_url)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> FakePlatform:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        server.daemon_threads = True
        # Do not wait for handlers still sleeping in a slow reply.
        server.block_on_close = False
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakePlatform:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakePlatform is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    # -- scripting and inspection ------------------------------------------

    def enqueue(self, *replies: Reply) -> None:
        with self._lock:
            self._replies.extend(replies)

    def profile(self, user_id: str, *replies: Reply) -> None:
        """Answer ``GET .../{user_id}`` with ``replies`` in order, the last one from
        then on. An id given none is answered as the Graph API answers an id it
        cannot read."""
        if not replies:
            raise ValueError("a profile needs at least one reply")
        with self._lock:
            self._profiles[user_id] = deque(replies)

    def templates(
        self, business_account_id: str, templates: list[dict[str, Any]], page_size: int = 2
    ) -> None:
        """Serve ``GET .../{business_account_id}/message_templates``: ``templates`` in
        pages of ``page_size``, each but the last with ``paging.next`` to follow."""
        with self._lock:
            self._templates[business_account_id] = (list(templates), page_size)

    def _template_page(self, path: str, query: str) -> Reply | None:
        parts = path.rstrip("/").split("/")
        if len(parts) < 2 or parts[-1] != "message_templates":
            return None
        with self._lock:
            listed = self._templates.get(parts[-2])
        if listed is None:
            return no_such_object(parts[-2])
        templates, page_size = listed
        after = int(parse_qs(query).get("after", ["0"])[0])
        page: dict[str, Any] = {"data": templates[after : after + page_size]}
        if after + page_size < len(templates):
            page["paging"] = {
                "cursors": {"before": str(after), "after": str(after + page_size)},
                "next": f"{self.base_url}{path}?limit={page_size}&after={after + page_size}",
            }
        return Reply(body=page)

    def profile_requests(self, user_id: str) -> list[RecordedRequest]:
        """The profile requests for ``user_id`` so far."""
        with self._lock:
            return [
                r
                for r in self.requests
                if r.method == "GET" and r.path.rsplit("/", 1)[-1] == user_id
            ]

    def reset(self) -> None:
        """Forget the scripted sends and the recorded requests; profiles stay, since
        a read of one may still be under way for a test that ended."""
        with self._lock:
            self._replies.clear()
            self.requests.clear()

    def wait_for_requests(self, count: int, timeout: float = 10.0) -> list[RecordedRequest]:
        """Block until at least ``count`` requests arrived; all of them so far."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self.requests) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"{len(self.requests)} request(s) after {timeout}s, expected {count}"
                    )
                self._lock.wait(remaining)
            return list(self.requests)

    # -- serving -------------------------------------------------------------

    def _next_reply(self, method: str, path: str, body: bytes) -> Reply:
        with self._lock:
            if method == "GET":
                return self._profile_reply(path.rsplit("/", 1)[-1])
            if self._replies:
                return self._replies.popleft()
        return self._success(method, path, body)

    def _profile_reply(self, user_id: str) -> Reply:
        replies = self._profiles.get(user_id)
        if not replies:
            return no_such_object(user_id)
        return replies.popleft() if len(replies) > 1 else replies[0]

    def _success(self, method: str, path: str, body: bytes) -> Reply:
        number = next(self._ids)
        if method != "POST":
            return Reply(status=405, body={"error": {"message": "method not allowed"}})
        if path.endswith("/Messages.json"):
            form = parse_qs(body.decode("utf-8", "replace"))
            return Reply(
                status=201,
                body={
                    "sid": f"SM{number:032x}",
                    "status": "queued",
                    "to": form.get("To", [""])[0],
                    "from": form.get("From", [""])[0],
                    "body": form.get("Body", [""])[0],
                    "num_media": str(len(form.get("MediaUrl", []))),
                },
            )
        if path.endswith("/messages"):
            try:
                payload = json.loads(body)
            except ValueError:
                payload = None
            if isinstance(payload, dict) and payload.get("messaging_product") == "whatsapp":
                to = str(payload.get("to", ""))
                return Reply(
                    body={
                        "messaging_product": "whatsapp",
                        "contacts": [{"input": to, "wa_id": to}],
                        "messages": [{"id": f"wamid.FAKE{number:06d}"}],
                    }
                )
            if isinstance(payload, dict) and isinstance(payload.get("recipient"), dict):
                return Reply(
                    body={
                        "recipient_id": payload["recipient"].get("id"),
                        "message_id": f"m_FAKE{number:06d}",
                    }
                )
            return Reply(status=400, body={"error": {"message": "unrecognized body", "code": 100}})
        return Reply(status=404, body={"error": {"message": f"no route {path}"}})

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)
            self._lock.notify_all()


def _handler_for(platform: FakePlatform) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            parts = urlsplit(self.path)
            headers = {name.lower(): value for name, value in self.headers.items()}
            reply = (
                self.command == "GET"
                and (
                    platform.media.reply(parts.path, headers)
                    or platform._template_page(parts.path, parts.query)
                )
            ) or platform._next_reply(self.command, parts.path, body)
            if isinstance(reply.body, bytes):
                payload = reply.body
            elif reply.body is None:
                payload = b""
            else:
                payload = json.dumps(reply.body).encode("utf-8")
            # Recorded before answering, so a client that gave up still shows up.
            platform._record(
                RecordedRequest(
                    method=self.command,
                    path=parts.path,
                    query=parts.query,
                    headers={name.lower(): value for name, value in self.headers.items()},
                    body=body,
                    status=reply.status,
                    reply=payload,
                    received_at=time.monotonic(),
                )
            )
            if reply.delay:
                time.sleep(reply.delay)
            try:
                self.send_response(reply.status)
                if "Content-Type" not in reply.headers:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client timed out and left

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
