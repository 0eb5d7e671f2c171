"""GCRA (the generic cell rate algorithm): one stored time per bucket, the moment its
budget is whole again (the "theoretical arrival time"), moved on by each request.

With Redis every process shares each bucket: one script, loaded once and run by its
digest, reads Redis's clock, decides and stores in one atomic round trip. Without
Redis the buckets live in this process. When Redis fails, requests are let through:
a limit that fails closed would turn a Redis outage into an outage of the API.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import Counter
from redis.asyncio import Redis
from redis.exceptions import NoScriptError, RedisError

from .rules import Rate

log = logging.getLogger("inbox.ratelimit")

LIMITER_ERRORS = Counter(
    "inbox_rate_limit_errors",
    "Rate-limit checks that could not reach Redis and let the request through",
)

# KEYS[1]: the bucket; ARGV: period and interval in microseconds.
# Answers {allowed, microseconds until allowed, microseconds until whole, now}.
SCRIPT = """
local period = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - period
if allow_at > now then
  return {0, math.ceil(allow_at - now), math.ceil(tat - now), now}
end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX',
  math.ceil((new_tat - now) / 1000) + 1)
return {1, 0, math.ceil(new_tat - now), now}
"""
# Seconds Redis is left alone after a failure: an unreachable host would otherwise cost
# every request a connect timeout.
BACKOFF_SECONDS = 1.0
# At most one warning per this many seconds; the counter has every failure.
LOG_EVERY_SECONDS = 60.0
MICRO = 1_000_000


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    # Unix seconds at which the whole budget is back.
    reset: int
    # Seconds until a request would be allowed; 0 when this one was.
    retry_after: int


def decide(rate: Rate, allowed: bool, wait: float, until_whole: float, now: float) -> Decision:
    """The answer's figures from the algorithm's, all in seconds; ``now`` in Unix time."""
    # The small term absorbs the float error of a budget spent exactly to its end.
    remaining = math.floor((rate.period - until_whole) / rate.interval + 1e-9) if allowed else 0
    return Decision(
        allowed=allowed,
        limit=rate.count,
        remaining=max(0, min(rate.count, remaining)),
        reset=math.ceil(now + until_whole),
        retry_after=0 if allowed else max(1, math.ceil(wait)),
    )


class Limiter(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def hit(self, key: str, rate: Rate) -> Decision | None:
        """Spend one request of ``key``'s budget; None when it could not be checked
        (the request goes through)."""
        ...


class MemoryLimiter:
    """The buckets of one process."""

    def __init__(self, max_keys: int = 100_000) -> None:
        self._tats: dict[str, float] = {}
        self._max_keys = max_keys

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        self._tats.clear()

    async def hit(self, key: str, rate: Rate) -> Decision:
        now = time.time()
        tat = max(self._tats.get(key, now), now)
        new_tat = tat + rate.interval
        allow_at = new_tat - rate.period
        if allow_at > now:
            return decide(rate, False, allow_at - now, tat - now, now)
        if len(self._tats) >= self._max_keys and key not in self._tats:
            self._prune(now)
        self._tats[key] = new_tat
        return decide(rate, True, 0.0, new_tat - now, now)

    def _prune(self, now: float) -> None:
        # Whole buckets hold nothing worth keeping; if every one is in use, the oldest
        # half goes (dicts keep insertion order).
        for key in [k for k, tat in self._tats.items() if tat <= now]:
            del self._tats[key]
        if len(self._tats) >= self._max_keys:
            for key in list(self._tats)[: self._max_keys // 2]:
                del self._tats[key]


class RedisLimiter:
    """The buckets of every process sharing one Redis."""

    def __init__(self, url: str, *, prefix: str = "inbox:rl:", timeout: float = 0.5) -> None:
        self._url = url
        self._prefix = prefix
        self._timeout = timeout
        self._redis: Redis | None = None
        self._sha: str | None = None
        self._resume_at = 0.0
        self._last_log = -math.inf
        self._unlogged = 0

    async def start(self) -> None:
        # Made here, on the serving loop: its connections belong to it.
        self._redis = Redis.from_url(
            self._url, socket_timeout=self._timeout, socket_connect_timeout=self._timeout
        )

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    async def hit(self, key: str, rate: Rate) -> Decision | None:
        redis = self._redis
        if redis is None or time.monotonic() < self._resume_at:
            self._let_through(None)
            return None
        args = (round(rate.period * MICRO), rate.interval * MICRO)
        try:
            if self._sha is None:
                self._sha = str(await redis.script_load(SCRIPT))
            try:
                answer = await redis.evalsha(self._sha, 1, self._prefix + key, *args)
            except NoScriptError:
                # Redis restarted or its scripts were flushed.
                self._sha = str(await redis.script_load(SCRIPT))
                answer = await redis.evalsha(self._sha, 1, self._prefix + key, *args)
        except (RedisError, OSError) as exc:
            self._resume_at = time.monotonic() + BACKOFF_SECONDS
            self._let_through(exc)
            return None
        allowed, wait, until_whole, now = (int(v) for v in answer)
        return decide(rate, bool(allowed), wait / MICRO, until_whole / MICRO, now / MICRO)

    def _let_through(self, exc: BaseException | None) -> None:
        LIMITER_ERRORS.inc()
        self._unlogged += 1
        now = time.monotonic()
        if now - self._last_log >= LOG_EVERY_SECONDS:
            log.warning(
                "rate limits not checked: Redis does not answer (%s); requests are let "
                "through (%d since the last warning)",
                exc.__class__.__name__ if exc is not None else "backing off",
                self._unlogged,
            )
            self._last_log = now
            self._unlogged = 0


def create_limiter(redis_url: str | None) -> Limiter:
    return RedisLimiter(redis_url) if redis_url else MemoryLimiter()
