"""Whose budget a request spends, and the guessing of credentials stopped per address.

A credential is read as authentication reads it (``Bearer`` in any case, the token
without its surrounding spaces), so every spelling that signs in spends one budget.

A request whose credential is refused as invalid (nobody's: not an expired or revoked
one) is counted against its client address in the ``invalid`` budget. Once an address
has spent it, this process refuses that address's credentials before they are checked,
until the budget allows one more: a guesser cannot tell a right guess from a wrong one,
and costs no database read. Requests without a credential are not held back: they guess
nothing. Valid credentials cost nothing more: only a refusal is counted.

Each process learns that an address is stopped from its own refused attempt, so behind
N processes an address may try up to N credentials more per refill than the budget.
"""

from __future__ import annotations

import hashlib
import time

import orjson
from starlette.types import Scope

from ..auth import credentials_from_headers
from ..errors import AuthenticationFailed
from .limiter import Decision

SESSION_COOKIE = b"inbox_session="
# The reason authentication gives for a credential that is nobody's (see auth.Reason);
# an expired or revoked one is genuine, and guesses nothing.
INVALID = "invalid"


def presented(scope: Scope) -> tuple[str | None, bool]:
    """(the key of the credential's budget, whether any credential header was sent).

    The key is None for a request without a credential, or with an Authorization
    header that is no credential (``Basic ...``, ``Bearer`` alone): those are counted
    under the client's address."""
    authorization = api_key = cookies = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            authorization = value
        elif name == b"x-api-key":
            api_key = value
        elif name == b"cookie":
            cookies = value
    sent = authorization is not None or api_key is not None
    try:
        credential = credentials_from_headers(
            authorization.decode("latin-1") if authorization is not None else None,
            api_key.decode("latin-1") if api_key is not None else None,
        )
    except AuthenticationFailed:
        return None, True
    if credential is None and cookies is not None:
        start = cookies.find(SESSION_COOKIE)
        if start >= 0:
            sent = True
            token = cookies[start + len(SESSION_COOKIE) :].split(b";", 1)[0].strip()
            credential = token.decode("latin-1") or None
    if not credential:
        return None, sent
    digest = hashlib.blake2b(credential.encode("utf-8", "surrogateescape"), digest_size=16)
    return "cred:" + digest.hexdigest(), sent


def refused_as_invalid(body: bytes) -> bool:
    """Whether a 401's error envelope says the credential is nobody's."""
    try:
        details = orjson.loads(body)["error"]["details"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return False
    return isinstance(details, dict) and details.get("reason") == INVALID


class Guessers:
    """The addresses of this process whose ``invalid`` budget is spent, until when."""

    def __init__(self, max_addresses: int = 10_000) -> None:
        self._until: dict[str, tuple[float, Decision]] = {}
        self._max = max_addresses

    def stopped(self, address: str) -> Decision | None:
        """The refusal to answer with while ``address`` may not try a credential."""
        entry = self._until.get(address)
        if entry is None:
            return None
        until, decision = entry
        now = time.time()
        if until <= now:
            del self._until[address]
            return None
        wait = max(1, round(until - now))
        return Decision(False, decision.limit, 0, decision.reset, wait)

    def stop(self, address: str, decision: Decision) -> None:
        if len(self._until) >= self._max and address not in self._until:
            now = time.time()
            for stale in [a for a, (until, _) in self._until.items() if until <= now]:
                del self._until[stale]
            if len(self._until) >= self._max:
                # Every one still stopped: the oldest go (dicts keep insertion order).
                for old in list(self._until)[: self._max // 2]:
                    del self._until[old]
        self._until[address] = (time.time() + decision.retry_after, decision)
