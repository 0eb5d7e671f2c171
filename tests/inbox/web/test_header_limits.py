"""Request heads over the bounds: 431 (414 for a long request line), then the connection
closes, without the server keeping what was sent. Real servers on real sockets: `inbox
serve` as deployed (uvicorn picks httptools), and uvicorn with h11 (and httptools) running
the same protocol classes around a small app."""

from __future__ import annotations

import asyncio
import contextlib
import json
import pickle
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import h11
import pytest
from servers import free_port, wait_for_port

from inbox.web.http_limits import (
    BoundedH11Protocol,
    BoundedHttpToolsProtocol,
    HeadLimits,
    HeadMeter,
    http_protocol,
)
from tests.inbox.test_cli import Cli, Served, clean_env

KIB = 1024
MIB = 1024 * KIB

# A small app behind uvicorn, bounded as `inbox serve` is, for the parser given as argv[2].
# /slow answers after half a second (a request that is still being answered); a
# WebSocket is accepted.
BARE_SERVER = """
import asyncio, sys, uvicorn
from inbox.web.http_limits import HeadLimits, uvicorn_options

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": 1000})
        return
    if scope["path"] == "/slow":
        await asyncio.sleep(0.5)
    body = b'{"headers": %d}' % len(scope["headers"])
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", b"%d" % len(body))]})
    await send({"type": "http.response.body", "body": body})

uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
            lifespan="on", **uvicorn_options(HeadLimits(), sys.argv[2]))
"""


@dataclass
class Server:
    name: str
    port: int
    pid: int


@dataclass
class Answer:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def error_code(self) -> str:
        code = json.loads(self.body)["error"]["code"]
        assert isinstance(code, str)
        return code


def connect(server: Server) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    return sock


class Reader:
    """Reads answers off one connection; what was read past an answer is kept."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def _more(self) -> bytes:
        try:
            return self.sock.recv(65536)
        except ConnectionResetError:
            return b""

    def answer(self) -> Answer:
        while b"\r\n\r\n" not in self.buffer:
            data = self._more()
            assert data, f"the connection closed before an answer: {self.buffer!r}"
            self.buffer += data
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(self.buffer) < length:
            data = self._more()
            assert data, "the connection closed inside an answer"
            self.buffer += data
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return Answer(int(status_line.split()[1]), headers, body)

    def closed(self) -> bool:
        """The server ended the connection (and sent nothing more)."""
        self.sock.settimeout(5)
        try:
            data = self._more()
        except TimeoutError:
            return False
        return data == b"" and self.buffer == b""


def send(sock: socket.socket, data: bytes) -> None:
    # Refused before all of it was sent, the answer is waiting all the same.
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        sock.sendall(data)


def exchange(server: Server, request: bytes) -> Answer:
    """One request on a new connection."""
    with connect(server) as sock:
        send(sock, request)
        return Reader(sock).answer()


def refused(server: Server, request: bytes) -> tuple[Answer, bool]:
    """One request on a new connection: the answer, and whether the server then closed."""
    with connect(server) as sock:
        send(sock, request)
        reader = Reader(sock)
        answer = reader.answer()
        return answer, reader.closed()


def request(path: str = "/livez", *headers: tuple[str, str], method: str = "GET") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{n}: {v}" for n, v in headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def fields(count: int) -> list[tuple[str, str]]:
    """``count`` header fields, Host included."""
    return [(f"X-Field-{i}", str(i)) for i in range(count - 1)]


def browser_headers() -> list[tuple[str, str]]:
    """40 fields as a browser with a heavy session sends them: a 4 KiB cookie."""
    common = [
        ("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/131.0"),
        ("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
        ("Accept-Language", "en-GB,en;q=0.9,de;q=0.8"),
        ("Accept-Encoding", "gzip, deflate, br, zstd"),
        ("Cookie", "inbox_session=" + "s" * (4 * KIB)),
        ("Referer", "https://inbox.example.com/conversations/1042"),
    ]
    extra = [(f"X-Custom-{i}", "value-" + "v" * 40) for i in range(39 - len(common))]
    return common + extra


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


# --- servers ----------------------------------------------------------------------------


def serve(tmp: Path, **env: str) -> Served:
    cli = Cli(tmp, clean_env(f"sqlite:///{tmp / 'inbox.db'}", **env))
    return cli.serve(free_port())


@pytest.fixture(scope="module")
def inbox_serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    served = serve(tmp_path_factory.mktemp("serve"))
    try:
        yield Server("inbox serve", int(served.url.rsplit(":", 1)[1]), served.proc.pid)
    finally:
        served.proc.kill()
        served.proc.wait()


def start_bare(parser: str) -> tuple[subprocess.Popen[bytes], Server]:
    port = free_port()
    root = Path(__file__).resolve().parents[3]
    proc = subprocess.Popen([sys.executable, "-c", BARE_SERVER, str(port), parser], cwd=root)
    try:
        wait_for_port(port)
    except TimeoutError:
        proc.kill()
        raise
    return proc, Server(f"uvicorn {parser}", port, proc.pid)


@pytest.fixture(scope="module", params=["httptools", "h11"])
def bare(request: pytest.FixtureRequest) -> Iterator[Server]:
    proc, server = start_bare(request.param)
    try:
        yield server
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def bare_h11() -> Iterator[Server]:
    proc, server = start_bare("h11")
    try:
        yield server
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture(params=["inbox serve", "uvicorn h11"])
def server(request: pytest.FixtureRequest) -> Server:
    """`inbox serve` as deployed (httptools), and the same bounds on uvicorn's h11."""
    fixture = "inbox_serve" if request.param == "inbox serve" else "bare_h11"
    found = request.getfixturevalue(fixture)
    assert isinstance(found, Server)
    return found


# --- what a client sees -----------------------------------------------------------------


def test_a_megabyte_of_headers_is_refused_with_431_and_the_connection_closed(server):
    big = [(f"X-Big-{i}", "b" * (64 * KIB)) for i in range(16)]
    answer, closed = refused(server, request("/livez", *big))
    assert answer.status == 431
    assert answer.headers["content-type"] == "application/json"
    assert answer.error_code() == "REQUEST_HEADERS_TOO_LARGE"
    assert "32768 bytes" in json.loads(answer.body)["error"]["message"]
    assert answer.headers["connection"] == "close"
    assert closed


def test_one_field_more_than_the_bound_is_431_and_the_bound_itself_passes(server):
    assert exchange(server, request("/livez", *fields(100))).status == 200
    answer, closed = refused(server, request("/livez", *fields(101)))
    assert answer.status == 431
    assert answer.error_code() == "REQUEST_HEADERS_TOO_LARGE"
    assert closed


def test_a_head_of_exactly_the_byte_bound_passes_and_one_byte_more_is_431(server):
    pad = 32 * KIB - len(request("/livez", ("X-Pad", "")))
    assert exchange(server, request("/livez", ("X-Pad", "p" * pad))).status == 200
    assert exchange(server, request("/livez", ("X-Pad", "p" * (pad + 1)))).status == 431


def test_a_megabyte_request_line_is_414(server):
    answer, closed = refused(server, request("/livez?q=" + "a" * MIB))
    assert answer.status == 414
    assert answer.error_code() == "URI_TOO_LONG"
    assert closed


def test_a_browser_request_with_40_fields_and_a_4_kib_cookie_is_answered(server):
    assert exchange(server, request("/livez", *browser_headers())).status == 200


def test_keep_alive_a_normal_request_then_an_oversized_one(server):
    with connect(server) as sock:
        reader = Reader(sock)
        for _ in range(3):
            sock.sendall(request("/livez", *browser_headers()))
            assert reader.answer().status == 200
        send(sock, request("/livez", ("X-Big", "b" * (40 * KIB))))
        assert reader.answer().status == 431
        assert reader.closed()


HANDSHAKE = [
    ("Upgrade", "websocket"),
    ("Connection", "Upgrade"),
    ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ("Sec-WebSocket-Version", "13"),
]


def test_a_websocket_handshake_with_oversized_headers_is_431_and_not_upgraded(server):
    # The same handshake within the bounds gets past the HTTP parser: the service then
    # asks for a ticket, the small app accepts.
    answer = exchange(server, request("/ws", *HANDSHAKE))
    if server.name == "uvicorn h11":
        assert answer.status == 101
    else:
        assert answer.status == 403
        assert json.loads(answer.body)["error"]["details"]["reason"] == "missing"
    for extra in ([("X-Big", "b" * (40 * KIB))], fields(120)):
        answer, closed = refused(server, request("/ws", *HANDSHAKE, *extra))
        assert answer.status == 431
        assert "upgrade" not in answer.headers
        assert closed


def test_a_websocket_handshake_within_the_bounds_is_upgraded(bare):
    answer = exchange(bare, request("/ws", *HANDSHAKE, *browser_headers()))
    assert answer.status == 101
    assert answer.headers["upgrade"] == "websocket"


def post(path: str, body: bytes) -> bytes:
    return request(path, ("Content-Length", str(len(body))), method="POST") + body


@pytest.mark.parametrize(
    "first",
    [request("/slow"), post("/slow", b'{"a": 1}' * 100)],
    ids=["GET", "POST with a body"],
)
@pytest.mark.parametrize("size", [40 * KIB, MIB], ids=["40 KiB", "1 MiB"])
def test_an_oversized_request_pipelined_behind_another_is_refused_after_its_answer(
    bare, first, size
):
    """Sent in one write: the oversized head begins inside the read that ends the first
    request, and must be counted from its first byte all the same."""
    with connect(bare) as sock:
        reader = Reader(sock)
        send(sock, first + request("/next", ("X-Big", "b" * size)))
        assert reader.answer().status == 200
        assert reader.answer().status == 431
        assert reader.closed()


def test_pipelined_requests_within_the_bounds_are_all_answered_in_order(bare):
    with connect(bare) as sock:
        reader = Reader(sock)
        sock.sendall(
            request("/slow")
            + post("/one", b"x" * 5000)
            + request("/two", *browser_headers())
            + request("/three")
        )
        answers = [reader.answer() for _ in range(4)]
        assert [a.status for a in answers] == [200] * 4
        # The app answers with how many fields it was given: each request is its own.
        assert [json.loads(a.body)["headers"] for a in answers] == [1, 2, 40, 1]


def test_a_request_pipelined_behind_a_chunked_body_is_never_parsed_uncounted(bare):
    """After a chunked body the next head's start is not known before parsing: httptools
    refuses such a request (uvicorn's 400) rather than parse its head uncounted; h11
    holds it, and it is counted before h11 parses it."""
    chunked = request("/slow", ("Transfer-Encoding", "chunked"), method="POST")
    big = request("/next", ("X-Big", "b" * (40 * KIB)))
    with connect(bare) as sock:
        reader = Reader(sock)
        send(sock, chunked + b"5\r\nhello\r\n0\r\n\r\n" + big)
        statuses = [reader.answer().status]
        if statuses[0] == 200:
            statuses.append(reader.answer().status)
        assert reader.closed()
    assert statuses == ([400] if bare.name == "uvicorn httptools" else [200, 431])


def test_the_bounds_are_the_settings(tmp_path):
    ten_kib = request("/livez", ("X-Pad", "p" * (10 * KIB)))
    many = request("/livez", *fields(25))
    served = serve(tmp_path, INBOX_MAX_HEADER_BYTES="8192", INBOX_MAX_HEADERS="20")
    try:
        server = Server("inbox serve", int(served.url.rsplit(":", 1)[1]), served.proc.pid)
        answer = exchange(server, ten_kib)
        assert answer.status == 431
        assert "8192 bytes" in json.loads(answer.body)["error"]["message"]
        assert exchange(server, many).status == 431
        assert exchange(server, request("/livez", *fields(20))).status == 200
    finally:
        served.proc.kill()
        served.proc.wait()


def test_a_flood_of_header_bytes_leaves_memory_flat(server):
    """The finding: 200 MB of headers on one connection grew the process by 500 MB."""
    before = rss_kib(server.pid)
    peak = before
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, rss_kib(server.pid))
            time.sleep(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()
    sent = 0
    closed = False
    chunk = b"a" * (64 * KIB)
    deadline = time.monotonic() + 60
    try:
        with connect(server) as sock:
            sock.sendall(b"GET /livez HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Flood: ")
            while sent < 200 * MIB and time.monotonic() < deadline:
                try:
                    sock.sendall(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    closed = True
                    break
                sent += len(chunk)
    finally:
        done.set()
        sampler.join()
    assert closed, f"the server took {sent / MIB:.0f} MiB of one header"
    assert sent < 32 * MIB
    assert (peak - before) < 20 * KIB, f"RSS grew by {(peak - before) / KIB:.1f} MiB"
    # And it still answers.
    assert exchange(server, request("/livez")).status == 200


# --- the assumptions about uvicorn ----------------------------------------------------------


async def test_uvicorn_still_has_what_the_bounds_rely_on():
    """If a uvicorn release renames any of these, the bounds stop working: fail here."""
    from uvicorn.config import Config
    from uvicorn.protocols.http.h11_impl import H11Protocol
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    from uvicorn.server import ServerState

    assert BoundedHttpToolsProtocol is not None, "httptools is installed with uvicorn[standard]"
    for name in (
        "on_message_begin",
        "on_headers_complete",
        "on_message_complete",
        "on_response_complete",
    ):
        assert name in vars(HttpToolsProtocol), f"HttpToolsProtocol.{name} is gone"
    assert "on_response_complete" in vars(H11Protocol)

    async def app(scope: object, receive: object, send: object) -> None:
        raise AssertionError("not called")

    made = http_protocol(HeadLimits(), "h11")
    config = Config(app, http=made)
    config.load()
    # uvicorn takes a callable that is not a class, and calls it as server.py does.
    assert config.http_protocol_class is made
    protocol = config.http_protocol_class(  # type: ignore[call-arg]
        config=config, server_state=ServerState(), app_state={}, _loop=asyncio.get_running_loop()
    )
    assert isinstance(protocol, BoundedH11Protocol)
    assert protocol.conn.their_state is h11.IDLE, "H11Protocol.conn is not an h11.Connection"
    # --workers hands the configuration to new processes by pickling it.
    pickled = pickle.dumps(http_protocol(HeadLimits(max_bytes=9000), "httptools"))
    again = pickle.loads(pickled)  # noqa: S301 - made just above
    assert again.keywords["limits"] == HeadLimits(max_bytes=9000)
    # What `inbox serve` runs where httptools is installed, as uvicorn would.
    assert http_protocol(HeadLimits()).func is BoundedHttpToolsProtocol  # type: ignore[attr-defined]


# --- the meter itself -----------------------------------------------------------------------


HEAD = b"GET /x HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n"


def meter(*chunks: bytes, head: int = 0) -> tuple[int, HeadMeter]:
    """Feed chunks as the protocol does: until a refusal, or until ``head`` bytes (where
    the parser says the head ended) went in."""
    counted = HeadMeter(HeadLimits(max_bytes=1000, max_headers=5, max_request_line=100))
    fed = 0
    for chunk in chunks:
        status = counted.feed(chunk)
        if status:
            return status, counted
        fed += len(chunk)
        if head and fed >= head:
            break
    return 0, counted


def test_a_head_split_anywhere_is_counted_as_in_one_piece():
    body = b"x\r\n\r\n" * 500
    for i in range(1, len(HEAD)):
        for j in range(i, len(HEAD) + 1):
            status, counted = meter(HEAD[:i], HEAD[i:j], HEAD[j:] + body, head=len(HEAD))
            assert (status, counted.size, counted.lines) == (0, len(HEAD), 7), (i, j)
    six = HEAD.replace(b"\r\n\r\n", b"\r\nE: 5\r\n\r\n")
    for i in range(1, len(six)):
        assert meter(six[:i], six[i:])[0] == 431, i


def test_bare_lf_line_ends_and_leading_empty_lines_are_counted_as_parsers_read_them():
    # h11 accepts bare LF: a body after such a head is not counted as head.
    bare = b"GET / HTTP/1.1\nHost: a\n\n"
    assert meter(bare + b"y\n" * 2000, head=len(bare))[0] == 0
    # Parsers skip empty lines before the request line; the head's bounds still hold.
    six = HEAD.replace(b"\r\n\r\n", b"\r\nE: 5\r\n\r\n")
    assert meter(b"\r\n\r\n" + HEAD + b"x" * 2000, head=4 + len(HEAD))[0] == 0
    assert meter(b"\r\n\r\n" + six)[0] == 431
    assert meter(b"\r\n" * 600)[0] == 431


def test_the_request_line_bound_is_exact_in_one_piece_and_in_several():
    limits = HeadLimits(max_bytes=32 * KIB, max_headers=100, max_request_line=100)
    for length, status in ((100, 0), (101, 414)):
        line = b"GET /" + b"a" * (length - len(b"GET / HTTP/1.1\r")) + b" HTTP/1.1\r\n"
        head = line + b"Host: a\r\n\r\n"
        assert len(line) == length + 1
        for cut in range(1, len(head)):
            pieces = [head] if cut == 1 else [head[:cut], head[cut:]]
            counted = HeadMeter(limits)
            got = 0
            for piece in pieces:
                got = counted.feed(piece)
                if got:
                    break
            assert got == status, (length, cut)
