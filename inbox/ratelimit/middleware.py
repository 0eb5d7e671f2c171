"""Budgets spent before a request reaches its route, and the headers that show them.

A request is counted under the credential it presents (a hash of the bearer token, the
API key or the console's session cookie, so a stranger cannot spend someone else's
budget, and no database read is needed to decide); without one, under the client's
address. Each credential is its own budget: a user's access tokens, keys and console
session each get one. Sign-ins are also counted per e-mail, by the routes that read it
(``spend_sign_in``).
"""

from __future__ import annotations

import hashlib

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import ApiError, error_body
from .addresses import ClientAddress
from .limiter import Decision, Limiter
from .rules import Rate

SIGN_IN_PATHS = frozenset({"/api/auth/login", "/api/auth/session"})
LEADS_PATH = "/webhooks/leads/incoming"
SESSION_COOKIE = b"inbox_session="
_SCOPE_KEY = "inbox.rate_limit"
_READS = frozenset({"GET", "HEAD"})


class RateLimited(ApiError):
    status, code = 429, "RATE_LIMITED"


class Budget:
    """A request's spending; routes spend more of it (the e-mail of a sign-in)."""

    __slots__ = ("decision", "limiter", "rates")

    def __init__(self, limiter: Limiter, rates: dict[str, Rate]) -> None:
        self.limiter = limiter
        self.rates = rates
        self.decision: Decision | None = None

    async def spend(self, category: str, key: str) -> None:
        """RateLimited (429) once ``key`` is past its budget in ``category``."""
        rate = self.rates.get(category)
        if rate is None:
            return
        decision = await self.limiter.hit(f"{category}:{key}", rate)
        if decision is None:
            return
        # The answer shows the tightest of the budgets it spent.
        if self.decision is None or decision.remaining <= self.decision.remaining:
            self.decision = decision
        if not decision.allowed:
            raise refused(decision)


def refused(decision: Decision) -> RateLimited:
    return RateLimited(
        f"Too many requests: try again in {decision.retry_after} s",
        {"limit": decision.limit, "retry_after": decision.retry_after},
    )


def rate_headers(decision: Decision) -> list[tuple[bytes, bytes]]:
    headers = [
        (b"x-ratelimit-limit", str(decision.limit).encode()),
        (b"x-ratelimit-remaining", str(decision.remaining).encode()),
        (b"x-ratelimit-reset", str(decision.reset).encode()),
    ]
    if not decision.allowed:
        headers.append((b"retry-after", str(decision.retry_after).encode()))
    return headers


async def spend_sign_in(request: Request, email: str) -> None:
    """Count a sign-in against the e-mail it names: guessing one account's password
    from many addresses stops too. RateLimited (429) past the budget."""
    budget = request.scope.get(_SCOPE_KEY)
    if isinstance(budget, Budget):
        digest = hashlib.blake2b(email.encode(), digest_size=16).hexdigest()
        await budget.spend("auth", f"email:{digest}")


class RateLimitMiddleware:
    """Limits ``/api`` per credential (reads and writes apart, sign-ins per address) and
    the public lead form per address; stamps the budget on every answer it limits."""

    def __init__(
        self,
        app: ASGIApp,
        limiter: Limiter,
        rates: dict[str, Rate],
        client_address: ClientAddress,
    ) -> None:
        self.app = app
        self.limiter = limiter
        self.rates = rates
        self.client_address = client_address

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.rates:
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        method: str = scope["method"]
        if path.startswith("/api/") and method != "OPTIONS":
            if method == "POST" and path in SIGN_IN_PATHS:
                category, who = "auth", "addr:" + self.client_address(scope)
            else:
                category = "read" if method in _READS else "write"
                who = _credential(scope) or "addr:" + self.client_address(scope)
        elif path == LEADS_PATH and method == "POST":
            category, who = "leads", "addr:" + self.client_address(scope)
        else:
            await self.app(scope, receive, send)
            return
        budget = Budget(self.limiter, self.rates)
        try:
            await budget.spend(category, who)
        except RateLimited as exc:
            assert budget.decision is not None
            # The lead form answers any origin: its page must be able to read the refusal.
            cors = [(b"access-control-allow-origin", b"*")] if category == "leads" else []
            await _refuse(send, exc, budget.decision, cors)
            return
        scope[_SCOPE_KEY] = budget

        async def stamped(message: Message) -> None:
            if message["type"] == "http.response.start" and budget.decision is not None:
                message["headers"] = [*message.get("headers", ()), *rate_headers(budget.decision)]
            await send(message)

        await self.app(scope, receive, stamped)


def _credential(scope: Scope) -> str | None:
    """The presented credential's hash, by the precedence authentication uses."""
    authorization = api_key = cookies = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            authorization = value
        elif name == b"x-api-key":
            api_key = value
        elif name == b"cookie":
            cookies = value
    credential = authorization or api_key
    if credential is None and cookies is not None:
        start = cookies.find(SESSION_COOKIE)
        if start >= 0:
            credential = cookies[start + len(SESSION_COOKIE) :].split(b";", 1)[0]
    if not credential:
        return None
    return "cred:" + hashlib.blake2b(credential.strip(), digest_size=16).hexdigest()


async def _refuse(
    send: Send, exc: RateLimited, decision: Decision, extra: list[tuple[bytes, bytes]]
) -> None:
    body = error_body(exc.code, exc.message, exc.details)
    await send(
        {
            "type": "http.response.start",
            "status": 429,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *rate_headers(decision),
                *extra,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
