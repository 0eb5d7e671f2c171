"""Slow, idle and surplus clients against `inbox serve` as deployed: a request whose head
or body does not arrive in time is closed, and past INBOX_MAX_CONNECTIONS new
connections are answered 503 (a WebSocket: closed with 1013), while signed webhooks
keep being answered."""

from __future__ import annotations

import contextlib
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from servers import IN_CI, free_port, wait_for_port
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect

from tests.inbox.platforms import (
    Connected,
    meta_headers,
    unique_digits,
    wait_for,
    whatsapp_text,
)
from tests.inbox.test_cli import Cli, Served, clean_env

SLOW_CLIENTS = 2000
MAX_CONNECTIONS = SLOW_CLIENTS + 50
HEADER_TIMEOUT = 6
BODY_TIMEOUT = 2
# The clients' sockets and the server's, in one machine, with room to spare.
DESCRIPTORS_NEEDED = 2 * (MAX_CONNECTIONS + 100) + 512


@pytest.fixture()
def served(tmp_path: Path) -> Iterator[tuple[Served, Connected]]:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < DESCRIPTORS_NEEDED:
        reason = f"ulimit -n is {soft}: {SLOW_CLIENTS} slow clients need {DESCRIPTORS_NEEDED}"
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)
    cli = Cli(
        tmp_path,
        clean_env(
            f"sqlite:///{tmp_path / 'inbox.db'}",
            INBOX_HEADER_TIMEOUT=str(HEADER_TIMEOUT),
            INBOX_BODY_TIMEOUT=str(BODY_TIMEOUT),
            INBOX_MAX_CONNECTIONS=str(MAX_CONNECTIONS),
        ),
    )
    try:
        org = cli.json("create-org", "--name", "Acme", "--create")
        n = unique_digits(9)
        settings = {
            "phone_number_id": f"106{n}",
            "access_token": f"wa-token-{n}",
            "app_secret": f"wa-secret-{n}",
            "verify_token": f"wa-verify-{n}",
        }
        channel = cli.json(
            "create-channel", "--org", str(org["id"]), "--kind", "whatsapp", "--name", "WA",
            *[arg for name, value in settings.items() for arg in ("--set", f"{name}={value}")],
        )
        server = cli.serve(free_port())
        yield server, Connected(channel["id"], "whatsapp", channel["routing_key"], settings)
    finally:
        cli.close()


def post_webhook(url: str, channel: Connected, wamid: str) -> httpx.Response:
    body = whatsapp_text(channel, wamid, f"hello {wamid}")
    with httpx.Client(base_url=url, timeout=10) as http:
        return http.post("/webhooks/whatsapp", content=body,
                         headers=meta_headers(body, channel.secret))


def open_sockets(port: int, count: int, sent: bytes) -> list[socket.socket]:
    opened = []
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        if sent:
            s.sendall(sent)
        s.setblocking(False)
        opened.append(s)
    return opened


def still_open(s: socket.socket) -> bool:
    try:
        return s.recv(1, socket.MSG_PEEK) != b""
    except BlockingIOError:
        return True
    except ConnectionError:
        return False


def read_until_closed(sockets: list[socket.socket], timeout: float) -> dict[socket.socket, bytes]:
    """What each socket receives until the server closes it (or ``timeout`` passes)."""
    received = {s: b"" for s in sockets}
    pending = set(sockets)
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        for s in pending.copy():
            try:
                chunk = s.recv(65536)
            except BlockingIOError:
                continue
            except ConnectionError:
                chunk = b""
            if chunk:
                received[s] += chunk
            else:
                pending.discard(s)
        time.sleep(0.05)
    return received


def test_slow_clients_are_closed_and_surplus_connections_refused_while_webhooks_answer(served):
    server, channel = served
    port = int(server.url.rsplit(":", 1)[1])
    slow: list[socket.socket] = []
    try:
        # Half a request line each, then nothing.
        slow = open_sockets(port, SLOW_CLIENTS, b"POST /webhooks/whatsa")
        for i in range(5):
            answer = post_webhook(server.url, channel, f"wamid.held{i}")
            assert answer.status_code == 200, answer.text
        assert all(still_open(s) for s in slow), "a slow client was closed before its bound"

        # Past the bound: idle connections push the count over INBOX_MAX_CONNECTIONS.
        surplus = open_sockets(port, MAX_CONNECTIONS - SLOW_CLIENTS + 10, b"")
        slow += surplus
        refused = post_webhook(server.url, channel, "wamid.refused")
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "SERVICE_UNAVAILABLE"
        assert refused.headers["retry-after"] == "1"
        with ws_connect(f"ws://127.0.0.1:{port}/ws", open_timeout=10) as ws, \
                pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013

        # A body that stops half way is closed too.
        head = (b"POST /webhooks/whatsapp HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"entry\"")
        stalled_body = open_sockets(port, 1, head)
        slow += stalled_body

        received = read_until_closed(slow, timeout=HEADER_TIMEOUT + 20)
        not_closed = [s for s in slow if still_open(s)]
        assert not not_closed, f"{len(not_closed)} slow clients still open"
        timed_out = [data for s, data in received.items() if s not in stalled_body]
        assert all(data.startswith(b"HTTP/1.1 408 ") for data in timed_out)
        assert b"REQUEST_TIMEOUT" in timed_out[0]

        # The slow ones gone, the server takes connections again.
        wait_for(lambda: post_webhook(server.url, channel, "wamid.after").status_code == 200,
                 what="webhooks to be taken again")
    finally:
        for s in slow:
            with contextlib.suppress(OSError):
                s.close()
    assert "over INBOX_MAX_CONNECTIONS" in server.output()


# A small app behind uvicorn, bounded as `inbox serve` is, for the parser given as argv[2]:
# a second's deadlines and at most 4 connections.
BARE_SERVER = """
import sys, uvicorn
from inbox.web.connection_bounds import ConnectionLimits, server_options
from inbox.web.head_meter import HeadLimits

async def app(scope, receive, send):
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        return
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})

limits = ConnectionLimits(header_timeout=1, body_timeout=1, max_connections=4)
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
            lifespan="off", **server_options(HeadLimits(), limits, sys.argv[2]))
"""

GET = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.fixture(params=["httptools", "h11"])
def bare(request: pytest.FixtureRequest) -> Iterator[int]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", BARE_SERVER, str(port), request.param])
    try:
        wait_for_port(port)
        yield port
    finally:
        proc.kill()
        proc.wait()


def answers(sock: socket.socket, timeout: float = 10) -> bytes:
    """All the server sends until it closes the connection."""
    sock.setblocking(True)
    sock.settimeout(timeout)
    received = b""
    with contextlib.suppress(ConnectionError):
        while chunk := sock.recv(65536):
            received += chunk
    return received


def test_each_request_of_a_connection_has_its_deadlines_and_answers_keep_coming(bare):
    port = bare
    with socket.create_connection(("127.0.0.1", port)) as half_head, \
            socket.create_connection(("127.0.0.1", port)) as stalled_body, \
            socket.create_connection(("127.0.0.1", port)) as kept_alive:
        half_head.sendall(b"GET / HT")
        stalled_body.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
        # Two requests pipelined, answered; then a third begun and never finished.
        kept_alive.sendall(GET + GET + b"GET /")
        assert answers(half_head).startswith(b"HTTP/1.1 408 ")
        assert answers(stalled_body) == b""
        got = answers(kept_alive)
        assert got.count(b"HTTP/1.1 200 ") == 2
        assert got.split(b"\r\n\r\nok")[-1].startswith(b"HTTP/1.1 408 ")


def test_past_the_connection_bound_requests_get_503_and_websockets_1013(bare):
    port = bare
    held = [socket.create_connection(("127.0.0.1", port)) for _ in range(4)]
    try:
        with socket.create_connection(("127.0.0.1", port)) as surplus:
            surplus.sendall(GET)
            got = answers(surplus)
        assert got.startswith(b"HTTP/1.1 503 ")
        assert b"retry-after: 1" in got and b"SERVICE_UNAVAILABLE" in got
        with ws_connect(f"ws://127.0.0.1:{port}/", open_timeout=10) as ws, \
                pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
    finally:
        for s in held:
            s.close()
    # Those held gone (once the server has seen them go), a new connection is served.
    def served() -> bool:
        with socket.create_connection(("127.0.0.1", port)) as fresh:
            fresh.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            return answers(fresh).startswith(b"HTTP/1.1 200 ")

    wait_for(served, what="a connection to be served again")
