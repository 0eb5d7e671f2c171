"""Bodies over the limit: the client reads its 413 (never a reset connection), and
webhook routes take the deliveries platforms document (WhatsApp: up to 3 MB) while
the REST API keeps its smaller limit."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlmodel import col
from support import LiveServer

from inbox.app import create_app
from inbox.models import Message
from inbox.settings import ConfigError, load_settings
from tests.inbox.conftest import make_settings
from tests.inbox.platforms import meta_headers, post_meta, rows, whatsapp_body, whatsapp_channel

MiB = 1024 * 1024
REST_LIMIT = MiB
WEBHOOK_LIMIT = 4 * MiB


def padded(body: bytes, size: int) -> bytes:
    """The JSON ``body`` grown to exactly ``size`` bytes with whitespace (still valid)."""
    assert len(body) <= size
    return body + b" " * (size - len(body))


def chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    """``total`` bytes as a stream: sent chunked, with no Content-Length to go by."""
    sent = 0
    while sent < total:
        n = min(size, total - sent)
        sent += n
        yield b" " * n


def assert_too_large(r: httpx.Response, limit: int) -> None:
    assert r.status_code == 413, r.text
    assert r.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
    assert str(limit) in r.json()["error"]["message"]


def test_a_2mb_rest_body_is_answered_413_every_time_never_a_reset(service):
    body = b"x" * 2_000_000
    for attempt in range(20):
        # A connection of its own each time: the 413 closes it.
        with httpx.Client(base_url=service.url, timeout=30) as http:
            try:
                r = http.post("/api/contacts", content=body,
                              headers={"Content-Type": "application/json"})
            except httpx.TransportError as exc:
                raise AssertionError(f"attempt {attempt}: {exc!r} instead of a 413") from exc
        assert_too_large(r, REST_LIMIT)


@pytest.mark.parametrize(
    ("path", "size", "framing"),
    [
        ("/api/contacts", 2_000_000, "content-length"),
        ("/webhooks/whatsapp", 5_000_000, "content-length"),
        # Read before anything else on a webhook route: the limit is found streaming.
        ("/webhooks/whatsapp", 5_000_000, "chunked"),
    ],
)
def test_a_client_writing_its_body_in_pieces_reads_the_413_too(service, path, size, framing):
    # As a platform's HTTP client writes: piece by piece, reading only once all is
    # sent. A server that answers and closes early resets the connection under it.
    data = b" " * size
    if framing == "chunked":
        piece = 16 * 1024
        body = b"".join(
            b"%x\r\n%s\r\n" % (len(data[i:i + piece]), data[i:i + piece])
            for i in range(0, size, piece)
        ) + b"0\r\n\r\n"
        framing_header = "Transfer-Encoding: chunked"
    else:
        body = data
        framing_header = f"Content-Length: {size}"
    head = (f"POST {path} HTTP/1.1\r\nHost: inbox\r\nContent-Type: application/json\r\n"
            f"{framing_header}\r\n\r\n")
    for attempt in range(5):
        try:
            answer = raw_request(service, head, body, piece=16 * 1024)
        except OSError as exc:
            raise AssertionError(f"attempt {attempt}: {exc!r} instead of a 413") from exc
        assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
        assert b'"PAYLOAD_TOO_LARGE"' in answer


def test_a_chunked_rest_body_over_the_limit_is_answered_413(service, tenant):
    # Signed in: the route reads the body only once the caller is known.
    headers = {"Content-Type": "application/json",
               "Authorization": tenant.api.headers["Authorization"]}
    for attempt in range(5):
        with httpx.Client(base_url=service.url, timeout=30) as http:
            try:
                r = http.post("/api/contacts", content=chunks(2_000_000), headers=headers)
            except httpx.TransportError as exc:
                raise AssertionError(f"attempt {attempt}: {exc!r} instead of a 413") from exc
        assert "content-length" not in r.request.headers
        assert_too_large(r, REST_LIMIT)


def test_a_rest_body_at_the_limit_is_not_refused_for_its_size(service, tenant):
    body = padded(json.dumps({"name": "Big Note"}).encode(), REST_LIMIT)
    r = tenant.api.post("/api/contacts", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 201, r.text
    over = tenant.api.post("/api/contacts", content=body + b" ",
                           headers={"Content-Type": "application/json"})
    assert_too_large(over, REST_LIMIT)


def test_a_3mb_whatsapp_delivery_is_stored_and_a_5mb_one_refused(service, tenant):
    channel = whatsapp_channel(tenant)
    text = whatsapp_body(channel, "text.json")

    three = post_meta(service, "whatsapp", padded(text, 3_000_000), channel.secret)
    assert three.status_code == 200, three.text
    assert three.json()["stored"] == 1

    for _ in range(5):
        five = post_meta(service, "whatsapp", padded(text, 5_000_000), channel.secret)
        assert_too_large(five, WEBHOOK_LIMIT)

    # The webhook limit is exact: at it a delivery, one byte over a 413.
    at_limit = post_meta(service, "whatsapp", padded(text, WEBHOOK_LIMIT), channel.secret)
    assert at_limit.status_code == 200, at_limit.text
    over = post_meta(service, "whatsapp", padded(text, WEBHOOK_LIMIT + 1), channel.secret)
    assert_too_large(over, WEBHOOK_LIMIT)
    assert len(rows(service, Message, col(Message.channel_id) == channel.id)) == 1


def test_a_chunked_delivery_over_the_webhook_limit_is_answered_413(service, tenant):
    channel = whatsapp_channel(tenant)
    text = whatsapp_body(channel, "text.json")

    def stream() -> Iterator[bytes]:
        yield text
        yield from chunks(5_000_000)

    r = service.client().post("/webhooks/whatsapp", content=stream(),
                              headers=meta_headers(b"", channel.secret))
    assert_too_large(r, WEBHOOK_LIMIT)
    assert rows(service, Message, col(Message.channel_id) == channel.id) == []


def raw_request(service: Any, head: str, body: bytes = b"", piece: int = 0) -> bytes:
    """Send ``head`` and ``body`` (in pieces of ``piece`` bytes, with a pause between
    them) on a socket of its own; what the server answers."""
    port = int(service.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head.encode())
        step = piece or max(len(body), 1)
        for start in range(0, len(body), step):
            sock.sendall(body[start:start + step])
            if piece:
                time.sleep(0.0005)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def test_a_declared_body_far_over_the_limit_is_refused_without_waiting_for_it(service):
    # 100 MB announced, none of it sent: the answer comes at once, the server does
    # not wait for (or read) a body it will refuse anyway.
    answer = raw_request(
        service,
        "POST /api/contacts HTTP/1.1\r\nHost: inbox\r\nContent-Type: application/json\r\n"
        "Content-Length: 100000000\r\n\r\n",
    )
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert b'"PAYLOAD_TOO_LARGE"' in answer


def test_a_client_expecting_100_continue_is_refused_before_it_sends_the_body(service):
    answer = raw_request(
        service,
        "POST /webhooks/whatsapp HTTP/1.1\r\nHost: inbox\r\nContent-Type: application/json\r\n"
        f"Content-Length: {5 * MiB}\r\nExpect: 100-continue\r\n\r\n",
    )
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert b"100 Continue" not in answer
    assert b'"PAYLOAD_TOO_LARGE"' in answer


def test_the_webhook_limit_is_configured_apart_from_the_rest_api(
    service, tenant, database_url, loop
):
    channel = whatsapp_channel(tenant)
    text = whatsapp_body(channel, "text.json")
    settings = make_settings(database_url, max_webhook_body_bytes=6 * MiB)
    server = LiveServer(create_app(settings), loop)
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            five = padded(text, 5_000_000)
            r = http.post("/webhooks/whatsapp", content=five,
                          headers=meta_headers(five, channel.secret))
            assert r.status_code == 200, r.text
            assert r.json()["stored"] == 1
            rest = http.post("/api/contacts", content=b"x" * 2_000_000,
                             headers={"Content-Type": "application/json"})
            assert_too_large(rest, REST_LIMIT)
    finally:
        server.stop()


def test_the_webhook_limit_is_read_from_its_variable(monkeypatch):
    monkeypatch.setenv("INBOX_ENV", "test")
    monkeypatch.setenv("INBOX_MAX_WEBHOOK_BODY_BYTES", str(8 * MiB))
    assert load_settings().max_webhook_body_bytes == 8 * MiB
    monkeypatch.setenv("INBOX_MAX_WEBHOOK_BODY_BYTES", "12")
    with pytest.raises(ConfigError, match="INBOX_MAX_WEBHOOK_BODY_BYTES"):
        load_settings()
    monkeypatch.delenv("INBOX_MAX_WEBHOOK_BODY_BYTES")
    assert load_settings().max_webhook_body_bytes == WEBHOOK_LIMIT
