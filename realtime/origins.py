"""Web origins compared as browsers define them: scheme, host and port, all three."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

Origin = tuple[str, str, int]

# A WebSocket's ws:// and wss:// are the origins of http:// and https:// pages.
_SCHEMES = {
    "http": ("http", 80),
    "https": ("https", 443),
    "ws": ("http", 80),
    "wss": ("https", 443),
}


def origin_of(url: str) -> Origin | None:
    """(scheme, host, port) of a URL or an ``Origin`` header, the default port filled in;
    None for anything that names no http(s) origin (``null``, a bad port, no host)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    known = _SCHEMES.get(parts.scheme.lower())
    if known is None or not parts.hostname:
        return None
    scheme, default_port = known
    return scheme, parts.hostname, port or default_port


def same_origin(origin: str, allowed: Iterable[str]) -> bool:
    """Whether ``origin`` is one of ``allowed`` (URLs or origins), by scheme, host and port."""
    mine = origin_of(origin)
    return mine is not None and any(mine == origin_of(other) for other in allowed)


@dataclass(frozen=True, slots=True)
class OriginPolicy:
    """Which pages may open a socket: ``"*"`` any; else the service's own origin
    (``own_url`` when set, else the one the handshake was addressed to), whose pages the
    service serves itself, and the ``allowed`` ones."""

    allowed: tuple[str, ...] = ()
    own_url: str | None = None

    def __call__(self, origin: str, addressed_to: str) -> bool:
        if "*" in self.allowed:
            return True
        return same_origin(origin, [*self.allowed, self.own_url or addressed_to])
