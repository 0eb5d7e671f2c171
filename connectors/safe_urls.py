"""Requests to URLs a customer chose (outgoing webhooks, a generic channel's callback):
never to the service's own network unless an operator allows it.

A URL is checked when it is saved (`check_url`, then `resolve` for its addresses) and
again for every connection: `GuardedTransport` resolves the name itself, refuses a
forbidden address, and connects to the address it checked, so a name that changes its
answer between the check and the connection (DNS rebinding) reaches nothing new. Its
pool keeps connections by host name, not by address: one opened for a name (its TLS
server name, its certificate) is never reused for another name that resolves alike.

An IPv6 address that carries an IPv4 one (IPv4-mapped, 6to4, NAT64, Teredo) is judged
by the IPv4 address it leads to.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import zlib
from collections.abc import Iterable
from urllib.parse import urlsplit

import httpcore
import httpx

MAX_URL_LENGTH = 2048
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# Cloud metadata services: instance credentials, never a webhook receiver.
_METADATA = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)
# The well-known NAT64 prefix: its last 32 bits are the IPv4 address reached.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
# Compressed answers are read at most this many times the bytes kept, whatever they
# decompress to: a stream of empty blocks is not read forever.
_MAX_RAW_FACTOR = 64


class UnsafeUrl(ValueError):
    """A URL the service will not send to; the message says why."""


class Unresolvable(UnsafeUrl):
    """A host name with no address now: maybe later, unlike a forbidden address."""


def check_url(url: str) -> str:
    """``url`` if it is an absolute http(s) URL without credentials; UnsafeUrl otherwise."""
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeUrl(f"must be at most {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeUrl(f"is not a URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeUrl("must be an absolute http:// or https:// URL")
    if parts.username is not None or parts.password is not None:
        raise UnsafeUrl("must not carry a user name or password")
    if port == 0:
        raise UnsafeUrl("must not name port 0")
    return url


def carried_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address leads to: IPv4-mapped (``::ffff:0:0/96``),
    6to4 (``2002::/16``), NAT64 (``64:ff9b::/96``) and Teredo (``2001::/32``: its server
    and its client); none for a plain IPv6 address."""
    if address.ipv4_mapped is not None:
        return [address.ipv4_mapped]
    if address.sixtofour is not None:
        return [address.sixtofour]
    if address in _NAT64:
        return [ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)]
    if address.teredo is not None:
        return list(address.teredo)
    return []


def refusal(address: IPAddress, allow_private: bool) -> str | None:
    """Why ``address`` may not be sent to, or None when it may."""
    if isinstance(address, ipaddress.IPv6Address) and (carried := carried_ipv4(address)):
        # The packets end up at the IPv4 address: the wrapper decides nothing.
        reasons = [refusal(ipv4, allow_private) for ipv4 in carried]
        return next((r for r in reasons if r is not None), None)
    # Never, whatever the setting: nothing a receiver runs on answers there.
    if address in _METADATA or address.is_link_local:
        return "a link-local or cloud metadata address"
    if address.is_unspecified or address.is_multicast:
        return "an unspecified or multicast address"
    if address.is_loopback or address.is_private:
        return None if allow_private else "a loopback or private address"
    if address.is_reserved:
        return "a reserved address"
    if not address.is_global:  # shared (carrier-grade NAT) and the like
        return None if allow_private else "a loopback or private address"
    return None


async def resolve(host: str, port: int, allow_private: bool) -> str:
    """An address of ``host`` to connect to; UnsafeUrl when it has none, or when any
    of its addresses is forbidden (a name with one private address is refused whole:
    which address a client picks is not ours to predict)."""
    try:
        literal: IPAddress | None = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [literal]
    else:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
        except (socket.gaierror, UnicodeError) as exc:
            raise Unresolvable(f"host {host!r} does not resolve: {exc}") from None
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
        if not addresses:
            raise Unresolvable(f"host {host!r} has no address")
    for address in addresses:
        reason = refusal(address, allow_private)
        if reason is not None:
            raise UnsafeUrl(f"host {host!r} resolves to {reason} ({address})")
    return str(addresses[0])


async def check_destination(url: str, allow_private: bool) -> None:
    """`check_url`, then `resolve`: what is checked when a URL is saved."""
    parts = urlsplit(check_url(url))
    assert parts.hostname is not None
    await resolve(parts.hostname, parts.port or _default_port(parts.scheme), allow_private)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """An HTTP transport that connects only to addresses `refusal` allows.

    The check is made where connections are opened (`_GuardedNetwork`), so the pool
    keeps each connection under the host name it was opened for."""

    def __init__(self, *, allow_private: bool) -> None:
        # No cap on connections in all: callers bound their own (per endpoint), and a
        # shared cap would let a few slow receivers hold every connection.
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=100)
        super().__init__(limits=limits)
        self.allow_private = allow_private
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_GuardedNetwork(allow_private),
        )


class _GuardedNetwork(httpcore.AsyncNetworkBackend):
    """Opens TCP connections to the address `resolve` checked for the name asked for."""

    def __init__(self, allow_private: bool) -> None:
        self.allow_private = allow_private
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            # The name's look-up is part of connecting, and of its time limit.
            async with asyncio.timeout(timeout):
                address = await resolve(host, port, self.allow_private)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"looking up {host!r} took too long") from None
        return await self._inner.connect_tcp(
            address, port, timeout, local_address=local_address, socket_options=socket_options
        )

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise UnsafeUrl("a Unix socket is never a customer's URL")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def guarded_client(*, allow_private: bool, timeout: float) -> httpx.AsyncClient:
    """A client for customers' URLs: guarded, no redirects followed, no proxies from
    the environment (a proxy would connect on its own terms). Answers are asked for
    uncompressed: what is kept of one is its first bytes, as text."""
    return httpx.AsyncClient(
        transport=GuardedTransport(allow_private=allow_private),
        timeout=timeout,
        follow_redirects=False,
        trust_env=False,
        headers={"accept-encoding": "identity"},
    )


async def read_capped(response: httpx.Response, limit: int) -> bytes:
    """At most ``limit`` bytes of a streamed response's body, decompressed when the
    receiver compressed it anyway (gzip or deflate); the rest is not read."""
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    inflate = _decompressor(encoding)
    kept = bytearray()
    raw_budget = limit * _MAX_RAW_FACTOR
    async for chunk in response.aiter_raw():
        raw_budget -= len(chunk)
        if inflate is None:
            kept += chunk[: limit - len(kept)]
        else:
            try:
                kept += inflate.decompress(chunk, limit - len(kept))
            except zlib.error:
                break  # not what it said it was: what was decoded so far stands
        if len(kept) >= limit or raw_budget <= 0 or (inflate is not None and inflate.eof):
            break
    return bytes(kept)


def _decompressor(encoding: str) -> zlib._Decompress | None:
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(zlib.MAX_WBITS | 16)
    if encoding == "deflate":
        # A zlib stream, as the specification says (a gzip header is taken as well).
        return zlib.decompressobj(zlib.MAX_WBITS | 32)
    return None


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80
