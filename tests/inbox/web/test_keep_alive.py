"""`inbox serve` keeps an idle connection open between requests for
INBOX_KEEP_ALIVE_TIMEOUT seconds, then closes it: behind a load balancer that reuses
connections for longer, a shorter wait makes the balancer answer 502 now and then."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from servers import free_port

from tests.inbox.test_cli import Cli, clean_env

REQUEST = b"GET /livez HTTP/1.1\r\nHost: inbox\r\n\r\n"


def answered(connection: socket.socket) -> bytes:
    connection.sendall(REQUEST)
    received = b""
    while b"\r\n\r\n" not in received or not received.endswith(b"}"):
        chunk = connection.recv(4096)
        if not chunk:
            break
        received += chunk
    return received


def closed_by_server(connection: socket.socket, within: float) -> bool:
    connection.settimeout(within)
    try:
        return connection.recv(1) == b""
    except TimeoutError:
        return False


def test_an_idle_connection_lives_as_long_as_the_setting_says(tmp_path: Path) -> None:
    # Shorter than uvicorn's own 5 s, so that the close can only come from the setting.
    cli = Cli(tmp_path, clean_env(f"sqlite:///{tmp_path / 'inbox.db'}",
                                  INBOX_KEEP_ALIVE_TIMEOUT="2"))
    try:
        served = cli.serve(free_port())
        port = int(served.url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
            assert answered(connection).startswith(b"HTTP/1.1 200")
            # Kept alive: a second request on the same connection is answered.
            assert answered(connection).startswith(b"HTTP/1.1 200")
            started = time.monotonic()
            assert closed_by_server(connection, within=4.5)
            assert time.monotonic() - started >= 1.5
    finally:
        cli.close()
