"""Trailing-slash redirects whose Location no request header chooses."""

from __future__ import annotations

from urllib.parse import quote

from starlette.responses import RedirectResponse
from starlette.routing import Match, Router
from starlette.types import Receive, Scope, Send


class SlashRedirect:
    """The router's fallback: a path that names a route once its trailing slash is added
    or taken away is redirected there (307: the method and body are kept), else 404.

    Starlette's own redirect is an absolute URL built from the Host header, which the
    client chooses: a forged Host sent the client, and any cache that kept the answer,
    elsewhere. This Location is a path on the host the client asked (relative), or under
    INBOX_PUBLIC_URL when it is set.
    """

    def __init__(self, router: Router, public_url: str | None) -> None:
        self.router = router
        self.base = public_url or ""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        location = self._location(scope) if scope["type"] == "http" else None
        if location is None:
            await self.router.not_found(scope, receive, send)
            return
        await RedirectResponse(location, status_code=307)(scope, receive, send)

    def _location(self, scope: Scope) -> str | None:
        path: str = scope["path"]
        other = path.rstrip("/") if path.endswith("/") else path + "/"
        # "//host/..." (or "/\host", as browsers read it) would name another host.
        if not other.startswith("/") or other[1:2] in ("/", "\\"):
            return None
        moved = {**scope, "path": other}
        if all(route.matches(moved)[0] is Match.NONE for route in self.router.routes):
            return None
        query = scope.get("query_string", b"").decode("latin-1")
        return self.base + quote(other) + (f"?{query}" if query else "")


def redirect_slashes(router: Router, public_url: str | None) -> None:
    """Answer trailing-slash redirects with SlashRedirect instead of Starlette's own."""
    router.redirect_slashes = False
    router.default = SlashRedirect(router, public_url)
