"""Budgets spent before a request reaches its route, and the headers that show them.

A request is counted under the credential it presents (a hash of the bearer token, the
API key or the console's session cookie, so a stranger cannot spend someone else's
budget, and no database read is needed to decide); without one, under the client's
address. Each credential is its own budget: a user's access tokens, keys and console
session each get one. Sign-ins are also counted per e-mail, by the routes that read it
(``spend_sign_in``); credentials refused as invalid per address (see ``credentials``);
platforms' deliveries per channel, when a cap is set, by the routes that know the
channel (``spend_webhook``).
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import replace

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import ApiError, error_body
from .addresses import ClientAddress
from .credentials import Guessers, presented, refused_as_invalid
from .limiter import Decision, Limiter
from .rules import Rate

SIGN_IN_PATHS = frozenset({"/api/auth/login", "/api/auth/session"})
LEADS_PATH = "/webhooks/leads/incoming"
WEBHOOKS = "/webhooks/"
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


async def spend_webhook(request: Request, channel_id: int) -> None:
    """Count a platform's delivery against the channel it is for, when a ``webhook``
    cap is set. RateLimited (429, with Retry-After: platforms retry) past it."""
    budget = request.scope.get(_SCOPE_KEY)
    if isinstance(budget, Budget):
        await budget.spend("webhook", f"channel:{channel_id}")


class RateLimitMiddleware:
    """Limits ``/api`` per credential (reads and writes apart, sign-ins per address),
    the public lead form per address, credentials refused as invalid per address, and
    stamps the budget on every answer it limits."""

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
        self.guessers = Guessers()
        self.webhook_cap = "webhook" in rates

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.rates:
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        method: str = scope["method"]
        credential, sent = presented(scope)
        category = who = None
        sign_in = False
        if path.startswith("/api/") and method != "OPTIONS":
            if method == "POST" and path in SIGN_IN_PATHS:
                category, who, sign_in = "auth", "addr:" + self.client_address(scope), True
            else:
                category = "read" if method in _READS else "write"
                who = credential or "addr:" + self.client_address(scope)
        elif path == LEADS_PATH and method == "POST":
            category, who = "leads", "addr:" + self.client_address(scope)
        elif not (sent or (self.webhook_cap and path.startswith(WEBHOOKS))):
            await self.app(scope, receive, send)
            return
        budget = Budget(self.limiter, self.rates)
        # Sign-ins are counted per address already, by their own category.
        address = self.client_address(scope) if sent and not sign_in else None
        try:
            if address is not None:
                stopped = self.guessers.stopped(address)
                if stopped is not None:
                    budget.decision = stopped
                    raise refused(stopped)
            if category is not None and who is not None:
                await budget.spend(category, who)
        except RateLimited as exc:
            assert budget.decision is not None
            # The lead form answers any origin: its page must be able to read the refusal.
            cors = [(b"access-control-allow-origin", b"*")] if category == "leads" else []
            await _refuse(send, exc, budget.decision, cors)
            return
        scope[_SCOPE_KEY] = budget
        if address is not None:
            send = self._charging_invalid(send, budget, address)

        async def stamped(message: Message) -> None:
            if message["type"] == "http.response.start" and budget.decision is not None:
                message["headers"] = [*message.get("headers", ()), *rate_headers(budget.decision)]
            await send(message)

        await self.app(scope, receive, stamped)

    def _charging_invalid(self, send: Send, budget: Budget, address: str) -> Send:
        """``send``, but a 401 for an invalid credential is counted against ``address``
        first, and answered 429 once the address is past its budget."""
        held: Message | None = None
        body = b""

        async def charging(message: Message) -> None:
            nonlocal held, body
            if message["type"] == "http.response.start" and message["status"] == 401:
                held = message
                return
            if held is None:
                await send(message)
                return
            body += message.get("body", b"")
            if message.get("more_body", False):
                return
            start, held = held, None
            if refused_as_invalid(body):
                try:
                    await budget.spend("invalid", "addr:" + address)
                except RateLimited as exc:
                    assert budget.decision is not None
                    self.guessers.stop(address, budget.decision)
                    await _refuse(send, exc, budget.decision, [])
                    return
                self._stop_when_spent(address, budget.decision)
                if budget.decision is not None:
                    start["headers"] = _restamped(start.get("headers", ()), budget.decision)
            await send(start)
            await send({"type": "http.response.body", "body": body})

        return charging


    def _stop_when_spent(self, address: str, decision: Decision | None) -> None:
        """Stop ``address`` from its last allowed guess on, not its first refused one:
        that one would reach authentication, and a right guess would get through."""
        rate = self.rates.get("invalid")
        if decision is None or rate is None or decision.remaining > 0:
            return
        # The budget is spent: one more comes back an interval after it was whole.
        wait = decision.reset - time.time() + rate.interval - rate.period
        self.guessers.stop(address, replace(decision, retry_after=max(1, math.ceil(wait))))


def _restamped(
    headers: list[tuple[bytes, bytes]], decision: Decision
) -> list[tuple[bytes, bytes]]:
    kept = [(k, v) for k, v in headers if not k.startswith(b"x-ratelimit-")]
    return [*kept, *rate_headers(decision)]


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
