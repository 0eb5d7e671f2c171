"""A webhook request as a platform sent it, free of any web framework."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit


class Headers(Mapping[str, str]):
    """Read-only, case-insensitive header mapping (HTTP names are case-insensitive).

    Built from a mapping or from (name, value) pairs; when a name repeats, the
    first value wins, as in Starlette's ``Headers``.
    """

    __slots__ = ("_items",)

    def __init__(self, source: Mapping[str, str] | Iterable[tuple[str, str]] = ()) -> None:
        pairs = source.items() if isinstance(source, Mapping) else source
        items: dict[str, str] = {}
        for name, value in pairs:
            items.setdefault(name.lower(), value)
        self._items = items

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


@dataclass(frozen=True)
class WebhookRequest:
    """One HTTP request as a platform sent it.

    ``url`` is the full public URL the platform called (Twilio signs it), which
    behind a proxy the application rebuilds from its public base URL.
    ``query`` defaults to the query string of ``url``. ``body`` is the raw
    bytes: signatures are computed over them, never over a re-serialization.
    """

    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=Headers)
    query: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    def __post_init__(self) -> None:
        if not isinstance(self.headers, Headers):
            object.__setattr__(self, "headers", Headers(self.headers))
        if not self.query and "?" in self.url:
            query = dict(parse_qsl(urlsplit(self.url).query, keep_blank_values=True))
            object.__setattr__(self, "query", query)

    @property
    def content_type(self) -> str:
        """The media type without parameters, lower-cased (``application/json``)."""
        return self.headers.get("content-type", "").split(";", 1)[0].strip().lower()
