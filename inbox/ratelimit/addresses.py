"""The client's address: the peer's, or the one a trusted proxy says it forwarded."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from starlette.types import Scope

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(values: Iterable[str]) -> tuple[Network, ...]:
    """ValueError names the first entry that is neither an address nor a CIDR network."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise ValueError(
                f"{value.strip()!r} is not an IP address or CIDR network, e.g. 10.0.0.0/8"
            ) from None
    return tuple(networks)


class ClientAddress:
    """``X-Forwarded-For`` is read only when the peer is a trusted proxy, from the right:
    the first address that is not itself a trusted proxy is the client. Anyone can write
    the header; only the proxies' own entries can be believed.

    uvicorn (`inbox serve`) already applies the same list to the peer it reports, so
    this changes nothing there; it holds for any other server too."""

    def __init__(self, trusted: tuple[Network, ...]) -> None:
        self._trusted = trusted
        self._known: dict[str, bool] = {}

    def __call__(self, scope: Scope) -> str:
        client = scope.get("client")
        peer = client[0] if client else "unknown"
        if not self._trusted or not self._is_trusted(peer):
            return peer
        forwarded = b""
        for name, value in scope["headers"]:
            if name == b"x-forwarded-for":
                forwarded = forwarded + b"," + value if forwarded else value
        if not forwarded:
            return peer
        hops = [h.strip() for h in forwarded.decode("latin-1").split(",") if h.strip()]
        for hop in reversed(hops):
            if not self._is_trusted(hop):
                return hop
        return hops[0] if hops else peer

    def _is_trusted(self, host: str) -> bool:
        known = self._known.get(host)
        if known is None:
            try:
                address = ipaddress.ip_address(host)
            except ValueError:
                known = False
            else:
                known = any(address in network for network in self._trusted)
            if len(self._known) < 10_000:
                self._known[host] = known
        return known
