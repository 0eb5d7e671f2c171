"""Which addresses the service sends customers' requests to."""

from __future__ import annotations

import gzip
import ipaddress
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from connectors.safe_urls import (
    UnsafeUrl,
    carried_ipv4,
    check_destination,
    check_url,
    guarded_client,
    read_capped,
    refusal,
)


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "100.64.0.1", "::1", "fd12::1"],
)
def test_loopback_and_private_addresses_are_refused_unless_allowed(address: str) -> None:
    ip = ipaddress.ip_address(address)
    assert refusal(ip, allow_private=False) is not None
    assert refusal(ip, allow_private=True) is None


@pytest.mark.parametrize(
    "address",
    [
        "169.254.169.254",
        "169.254.1.1",
        "fe80::1",
        "fd00:ec2::254",
        "0.0.0.0",
        "224.0.0.1",
        "::ffff:169.254.169.254",
    ],
)
def test_link_local_metadata_and_unspecified_addresses_are_always_refused(address: str) -> None:
    assert refusal(ipaddress.ip_address(address), allow_private=True) is not None


def test_public_addresses_are_allowed() -> None:
    assert refusal(ipaddress.ip_address("93.184.216.34"), allow_private=False) is None
    assert refusal(ipaddress.ip_address("2606:4700::1111"), allow_private=False) is None


@pytest.mark.parametrize(
    "url", ["ftp://example.com/", "example.com/hook", "https://u:p@example.com/", "http:///x"]
)
def test_only_absolute_http_urls_without_credentials_pass(url: str) -> None:
    with pytest.raises(UnsafeUrl):
        check_url(url)


async def test_a_name_resolving_to_loopback_is_refused_when_saved_and_when_sent() -> None:
    with pytest.raises(UnsafeUrl, match="loopback"):
        await check_destination("http://localhost:9/hook", allow_private=False)
    async with guarded_client(allow_private=False, timeout=2) as client:
        with pytest.raises(UnsafeUrl, match="loopback"):
            await client.post("http://localhost:9/hook", content=b"{}")
        with pytest.raises(UnsafeUrl, match="metadata"):
            await client.get("http://169.254.169.254/latest/meta-data/")


async def test_redirects_are_not_followed() -> None:
    def redirect(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(302, headers={"location": "http://169.254.169.254/"})

    client = guarded_client(allow_private=True, timeout=2)
    assert client.follow_redirects is False
    await client.aclose()
    async with httpx.AsyncClient(transport=httpx.MockTransport(redirect)) as plain:
        answered = await plain.post("http://example.test/", follow_redirects=False)
    assert answered.status_code == 302


@pytest.mark.parametrize(
    ("address", "carried"),
    [
        ("::ffff:127.0.0.1", "127.0.0.1"),  # IPv4-mapped
        ("2002:7f00:1::1", "127.0.0.1"),  # 6to4
        ("2002:a00:1::", "10.0.0.1"),
        ("64:ff9b::7f00:1", "127.0.0.1"),  # NAT64
        ("64:ff9b::c0a8:101", "192.168.1.1"),
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", "127.0.0.1"),  # Teredo (client obfuscated)
    ],
)
def test_ipv6_wrapping_a_private_ipv4_is_refused_unless_allowed(address: str, carried: str) -> None:
    ip = ipaddress.ip_address(address)
    assert isinstance(ip, ipaddress.IPv6Address)
    assert ipaddress.ip_address(carried) in carried_ipv4(ip)
    assert refusal(ip, allow_private=False) == "a loopback or private address"
    assert refusal(ip, allow_private=True) is None


@pytest.mark.parametrize(
    "address",
    [
        "::ffff:169.254.169.254",
        "2002:a9fe:a9fe::1",  # 6to4
        "64:ff9b::a9fe:a9fe",  # NAT64
        # Teredo whose client is 169.254.169.254 (its bits inverted in the address)
        "2001:0:4136:e378:8000:63bf:5601:5601",
    ],
)
def test_ipv6_wrapping_the_metadata_address_is_always_refused(address: str) -> None:
    assert "metadata" in (refusal(ipaddress.ip_address(address), allow_private=True) or "")


@pytest.mark.parametrize("address", ["2002:5db8:d822::1", "64:ff9b::5db8:d822"])
def test_ipv6_wrapping_a_public_ipv4_is_allowed(address: str) -> None:
    assert refusal(ipaddress.ip_address(address), allow_private=False) is None


async def test_a_name_resolving_to_a_wrapped_private_address_is_refused_when_sent() -> None:
    async with guarded_client(allow_private=False, timeout=2) as client:
        with pytest.raises(UnsafeUrl, match="loopback"):
            await client.post("http://[2002:7f00:1::1]:9/hook", content=b"{}")
        with pytest.raises(UnsafeUrl, match="metadata"):
            await client.post("http://[64:ff9b::a9fe:a9fe]/hook", content=b"{}")


class _Peer(BaseHTTPRequestHandler):
    """Answers with the client's port (which connection the request came on), the Host
    header, and the Accept-Encoding asked for; gzipped when ``/gzip`` is asked for,
    whatever the request accepts."""

    protocol_version = "HTTP/1.1"  # keep-alive: a connection can serve several requests

    def do_GET(self) -> None:
        body = json.dumps(
            {
                "port": self.client_address[1],
                "host": self.headers.get("host"),
                "accept_encoding": self.headers.get("accept-encoding"),
                "padding": "p" * 3000,
            }
        ).encode()
        self.send_response(200)
        if self.path == "/gzip":
            body = gzip.compress(body)
            self.send_header("content-encoding", "gzip")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture()
def peer() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Peer)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


async def test_a_connection_is_reused_for_its_own_host_name_only(peer: int) -> None:
    # "localhost" resolves to the very address the other name is: one server, two names.
    async with guarded_client(allow_private=True, timeout=2) as client:
        first = (await client.get(f"http://localhost:{peer}/")).json()
        again = (await client.get(f"http://localhost:{peer}/")).json()
        other = (await client.get(f"http://127.0.0.1:{peer}/")).json()
        back = (await client.get(f"http://localhost:{peer}/")).json()
    assert first["host"] == f"localhost:{peer}" and other["host"] == f"127.0.0.1:{peer}"
    assert again["port"] == first["port"] == back["port"]
    assert other["port"] != first["port"]


async def test_answers_are_asked_for_uncompressed_and_read_decoded_up_to_the_cap(
    peer: int,
) -> None:
    async with guarded_client(allow_private=True, timeout=2) as client:
        async with client.stream("GET", f"http://127.0.0.1:{peer}/") as plain:
            kept = await read_capped(plain, 1024)
        # A receiver that compresses although it was asked not to.
        async with client.stream("GET", f"http://127.0.0.1:{peer}/gzip") as zipped:
            unzipped = await read_capped(zipped, 1024)
    assert len(kept) == 1024 and kept.startswith(b'{"port": ')
    assert b'"accept_encoding": "identity"' in kept
    assert unzipped[:12] == kept[:12] and len(unzipped) == 1024
    assert b'"accept_encoding": "identity"' in unzipped
