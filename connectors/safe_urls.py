"""Requests to URLs a customer chose (outgoing webhooks, a generic channel's callback):
never to the service's own network unless an operator allows it.

A URL is checked when it is saved (`check_url`, then `resolve` for its addresses) and
again for every request: `GuardedTransport` resolves the name itself, refuses a
forbidden address, and connects to the address it checked (the name stays in the
``Host`` header and the TLS server name), so a name that changes its answer between
the check and the connection (DNS rebinding) reaches nothing new.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

import httpx

MAX_URL_LENGTH = 2048
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# Cloud metadata services: instance credentials, never a webhook receiver.
_METADATA = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)


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


def refusal(address: IPAddress, allow_private: bool) -> str | None:
    """Why ``address`` may not be sent to, or None when it may."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
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


class GuardedTransport(httpx.AsyncBaseTransport):
    """An HTTP transport that connects only to addresses `refusal` allows."""

    def __init__(self, *, allow_private: bool) -> None:
        self.allow_private = allow_private
        # No cap on connections in all: callers bound their own (per endpoint), and a
        # shared cap would let a few slow receivers hold every connection.
        self._inner = httpx.AsyncHTTPTransport(
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=100)
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        host = url.host
        address = await resolve(host, url.port or _default_port(url.scheme), self.allow_private)
        # The Host header was set from the name when the request was built.
        request.url = url.copy_with(host=address)
        if url.scheme == "https":
            request.extensions = {**request.extensions, "sni_hostname": host}
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def guarded_client(*, allow_private: bool, timeout: float) -> httpx.AsyncClient:
    """A client for customers' URLs: guarded, no redirects followed, no proxies from
    the environment (a proxy would connect on its own terms)."""
    return httpx.AsyncClient(
        transport=GuardedTransport(allow_private=allow_private),
        timeout=timeout,
        follow_redirects=False,
        trust_env=False,
    )


async def read_capped(response: httpx.Response, limit: int) -> bytes:
    """At most ``limit`` bytes of a streamed response's body; the rest is not read."""
    kept = bytearray()
    async for chunk in response.aiter_raw():
        kept += chunk[: limit - len(kept)]
        if len(kept) >= limit:
            break
    return bytes(kept)


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80
