"""The client outgoing webhooks post with: kept-alive connections, answers read up to a
cap, and destinations checked at every connection."""

from __future__ import annotations

import gzip
import time
from collections.abc import Iterator
from typing import Any

import pytest
from support import BackgroundLoop, LiveServer

from connectors.safe_urls import UnsafeUrl
from inbox.services.webhooks.client import DeliveryClient, DeliveryFailed


class Receiver:
    """An ASGI receiver on uvicorn that notes which connection each request came on."""

    def __init__(self) -> None:
        self.peers: list[tuple[str, int]] = []
        self.bodies: list[bytes] = []
        self.status = 204
        self.headers: list[tuple[bytes, bytes]] = []
        self.body = b""

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.peers.append(scope["client"])
        self.bodies.append(body)
        await send({"type": "http.response.start", "status": self.status, "headers": self.headers})
        await send({"type": "http.response.body", "body": self.body})


@pytest.fixture()
def receiver(loop: BackgroundLoop) -> Iterator[tuple[Receiver, str]]:
    app = Receiver()
    server = LiveServer(app, loop, lifespan="off")
    server.start()
    yield app, f"{server.url}/hook?from=inbox"
    server.stop()


def post(loop: BackgroundLoop, client: DeliveryClient, url: str, body: bytes = b"{}") -> Any:
    return loop.run(client.post(url, body, [("content-type", "application/json")], 1024))


def test_requests_one_after_another_share_one_connection(
    loop: BackgroundLoop, receiver: tuple[Receiver, str]
) -> None:
    app, url = receiver
    client = DeliveryClient(allow_private=True)

    answers = [post(loop, client, url, f'{{"n":{i}}}'.encode()) for i in range(5)]

    assert [a.status for a in answers] == [204] * 5
    assert app.bodies == [f'{{"n":{i}}}'.encode() for i in range(5)]
    assert len(set(app.peers)) == 1
    loop.run(client.aclose())


def test_a_loopback_receiver_is_refused_unless_private_addresses_are_allowed(
    loop: BackgroundLoop, receiver: tuple[Receiver, str]
) -> None:
    app, url = receiver
    client = DeliveryClient(allow_private=False)

    with pytest.raises(UnsafeUrl, match="loopback"):
        post(loop, client, url)
    assert app.peers == []


def test_only_the_first_bytes_of_a_long_answer_are_kept_and_the_next_request_still_goes(
    loop: BackgroundLoop, receiver: tuple[Receiver, str]
) -> None:
    app, url = receiver
    app.status, app.body = 500, b"x" * 100_000
    client = DeliveryClient(allow_private=True)

    first = post(loop, client, url)
    app.status, app.body = 200, b"ok"
    second = post(loop, client, url)

    assert (first.status, first.body) == (500, b"x" * 1024)
    assert (second.status, second.body) == (200, b"ok")
    assert len(app.bodies) == 2
    loop.run(client.aclose())


def test_a_compressed_answer_is_kept_as_text_and_retry_after_is_read(
    loop: BackgroundLoop, receiver: tuple[Receiver, str]
) -> None:
    app, url = receiver
    app.status = 429
    app.headers = [(b"content-encoding", b"gzip"), (b"retry-after", b"120")]
    app.body = gzip.compress(b"slow down")
    client = DeliveryClient(allow_private=True)

    answer = post(loop, client, url)

    assert (answer.status, answer.body, answer.retry_after) == (429, b"slow down", "120")
    loop.run(client.aclose())


def test_a_receiver_that_is_down_is_a_failed_delivery_not_a_crash(loop: BackgroundLoop) -> None:
    app = Receiver()
    server = LiveServer(app, loop, lifespan="off")
    server.start()
    url = f"{server.url}/hook"
    server.stop()
    client = DeliveryClient(allow_private=True)

    with pytest.raises(DeliveryFailed, match="cannot connect"):
        post(loop, client, url)


def test_a_connection_the_receiver_closed_while_idle_is_replaced_not_failed(
    loop: BackgroundLoop,
) -> None:
    app = Receiver()
    # uvicorn closes a kept-alive connection idle for a second.
    server = LiveServer(app, loop, lifespan="off", timeout_keep_alive=1)
    server.start()
    client = DeliveryClient(allow_private=True)
    try:
        first = post(loop, client, f"{server.url}/hook")
        time.sleep(1.5)
        second = post(loop, client, f"{server.url}/hook")
    finally:
        loop.run(client.aclose())
        server.stop()

    assert (first.status, second.status) == (204, 204)
    assert len(set(app.peers)) == 2
