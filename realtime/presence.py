"""Who is connected: per (organization, user) connection counts, reporting the moments a
user's first connection opens (online) and last one closes (offline)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Protocol
from urllib.parse import urlsplit

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

# (organization_id, user_id, online)
PresenceHook = Callable[[int, int, bool], Awaitable[object]]


class Presence(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def connect(self, organization_id: int, user_id: int) -> None: ...

    async def disconnect(self, organization_id: int, user_id: int) -> None: ...

    async def online(self, organization_id: int) -> set[int]: ...


def create_presence(
    url: str | None, on_change: PresenceHook | None = None, *, prefix: str = "realtime"
) -> Presence:
    """In memory for one process; Redis when several processes share the users."""
    if url is None or urlsplit(url).scheme == "memory":
        return MemoryPresence(on_change)
    return RedisPresence(url, on_change, prefix=prefix)


async def _report(hook: PresenceHook | None, organization_id: int, user_id: int, up: bool) -> None:
    if hook is None:
        return
    try:
        await hook(organization_id, user_id, up)
    except Exception:
        logger.exception("presence hook failed for user %s", user_id)


class MemoryPresence:
    def __init__(self, on_change: PresenceHook | None = None) -> None:
        self._on_change = on_change
        self._counts: Counter[tuple[int, int]] = Counter()

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        self._counts.clear()

    async def connect(self, organization_id: int, user_id: int) -> None:
        key = (organization_id, user_id)
        self._counts[key] += 1
        if self._counts[key] == 1:
            await _report(self._on_change, organization_id, user_id, True)

    async def disconnect(self, organization_id: int, user_id: int) -> None:
        key = (organization_id, user_id)
        if self._counts[key] <= 0:
            return
        self._counts[key] -= 1
        if self._counts[key] == 0:
            del self._counts[key]
            await _report(self._on_change, organization_id, user_id, False)

    async def online(self, organization_id: int) -> set[int]:
        return {user for (org, user) in self._counts if org == organization_id}


# Keys, under the prefix:
#   procs              zset: process id -> when its liveness lapses (ms, Redis clock)
#   proc:{pid}         set of "org:user" the process holds, so a dead one can be swept
#   user:{org}:{user}  hash: process id -> that process's connection count
#   org:{org}          set of online user ids, for listing
# A user is online while some live process holds a count > 0; a process that crashed
# stops refreshing its liveness and its counts stop counting.

_ONLINE = """
local function online(hash, procs, now)
  local fields = redis.call('HGETALL', hash)
  for i = 1, #fields, 2 do
    if tonumber(fields[i + 1]) > 0 then
      local lapses = redis.call('ZSCORE', procs, fields[i])
      if lapses and tonumber(lapses) > now then return true end
    end
  end
  return false
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# KEYS: procs, proc:{pid}, user:{org}:{user}, org:{org}
# ARGV: pid, "org:user", user id, this process's count, ttl ms
# Returns {change, online}: change is 1 when the user came online, -1 when they went
# offline, 0 otherwise; online is 1 when the user is online now, else 0.
_SET_COUNT = (
    _ONLINE
    + """
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[5]), ARGV[1])
local before = online(KEYS[3], KEYS[1], now)
if tonumber(ARGV[4]) > 0 then
  redis.call('HSET', KEYS[3], ARGV[1], ARGV[4])
  redis.call('SADD', KEYS[2], ARGV[2])
else
  redis.call('HDEL', KEYS[3], ARGV[1])
  redis.call('SREM', KEYS[2], ARGV[2])
end
local after = online(KEYS[3], KEYS[1], now)
if after then redis.call('SADD', KEYS[4], ARGV[3]) else redis.call('SREM', KEYS[4], ARGV[3]) end
local state = after and 1 or 0
if before == after then return {0, state} end
if after then return {1, state} end
return {-1, state}
"""
)

# KEYS: procs. ARGV: pid, ttl ms. Returns 1 when the process was missing (it was swept).
_HEARTBEAT = (
    _ONLINE
    + """
return redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
"""
)

# KEYS: procs. ARGV: key prefix. Removes lapsed processes; returns the "org:user" that
# went offline with them.
_SWEEP = (
    _ONLINE
    + """
local gone = {}
for _, pid in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 100)) do
  redis.call('ZREM', KEYS[1], pid)
  local held = ARGV[1] .. ':proc:' .. pid
  for _, member in ipairs(redis.call('SMEMBERS', held)) do
    local hash = ARGV[1] .. ':user:' .. member
    redis.call('HDEL', hash, pid)
    if not online(hash, KEYS[1], now) then
      local sep = string.find(member, ':', 1, true)
      local org = string.sub(member, 1, sep - 1)
      redis.call('SREM', ARGV[1] .. ':org:' .. org, string.sub(member, sep + 1))
      table.insert(gone, member)
    end
  end
  redis.call('DEL', held)
end
return gone
"""
)


class RedisPresence:
    """Presence shared by every process through Redis.

    Each process keeps its own counts (the truth for its own sockets) and writes them to
    Redis; a heartbeat keeps the process alive there, rewrites its counts if Redis lost
    them, and sweeps processes whose heartbeat lapsed, reporting their users offline.
    """

    def __init__(
        self,
        url: str,
        on_change: PresenceHook | None = None,
        *,
        prefix: str = "realtime",
        ttl: float = 30.0,
        timeout: float = 2.0,
        retry_interval: float = 1.0,
    ) -> None:
        self._url = url
        self._on_change = on_change
        self._prefix = f"{prefix}:presence"
        self._ttl_ms = int(ttl * 1000)
        self._timeout = timeout
        self._retry_interval = retry_interval
        self.process_id = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._counts: Counter[tuple[int, int]] = Counter()
        # Users whose last write failed: the change it stood for may not have been told.
        self._unsettled: set[tuple[int, int]] = set()
        # Writes go out one at a time so Redis sees this process's counts in order.
        self._lock: asyncio.Lock | None = None
        self._redis: Redis | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._stale = False

    async def start(self) -> None:
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._redis = Redis.from_url(
            self._url,
            socket_timeout=self._timeout,
            socket_connect_timeout=self._timeout,
            # A pooled connection does not survive a Redis restart: without one retry on a
            # fresh connection, the first write after it would fail. Writes set absolute
            # counts, so repeating one is harmless.
            retry=Retry(NoBackoff(), 1),
        )
        self._heartbeat = asyncio.get_running_loop().create_task(
            self._beat(), name="realtime-presence-heartbeat"
        )

    async def stop(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            await asyncio.wait([self._heartbeat])
            self._heartbeat = None
        for organization_id, user_id in list(self._counts):
            self._counts[organization_id, user_id] = 0
            with contextlib.suppress(RedisError, OSError):
                await self._write(organization_id, user_id)
        self._counts.clear()
        self._unsettled.clear()
        if self._redis is not None:
            # If this fails, other processes sweep the entry once it lapses.
            with contextlib.suppress(RedisError, OSError):
                await self._redis.zrem(self._key("procs"), self.process_id)
            await self._redis.aclose()
            self._redis = None

    async def connect(self, organization_id: int, user_id: int) -> None:
        self._counts[organization_id, user_id] += 1
        await self._write(organization_id, user_id)

    async def disconnect(self, organization_id: int, user_id: int) -> None:
        key = (organization_id, user_id)
        if self._counts[key] <= 0:
            return
        self._counts[key] -= 1
        await self._write(organization_id, user_id)

    async def online(self, organization_id: int) -> set[int]:
        members = await self._client().smembers(self._key(f"org:{organization_id}"))
        return {int(member) for member in members}

    async def heartbeat(self) -> None:
        """One beat: stay alive, repair this process's entries, sweep dead processes."""
        redis = self._client()
        missing = await redis.eval(_HEARTBEAT, 1, self._key("procs"), self.process_id, self._ttl_ms)
        if missing and self._counts:
            logger.warning("presence entries of this process lapsed in Redis: rewriting them")
            self._stale = True
        if self._stale:
            self._stale = False
            for organization_id, user_id in list(self._counts):
                await self._write(organization_id, user_id)
        gone = await redis.eval(_SWEEP, 1, self._key("procs"), self._prefix)
        for member in gone:
            organization_id, user_id = (int(part) for part in member.split(b":"))
            await _report(self._on_change, organization_id, user_id, False)

    async def _beat(self) -> None:
        interval = self._ttl_ms / 3000
        failing = False
        while True:
            try:
                await self.heartbeat()
                if failing:
                    logger.warning("presence heartbeat restored")
                failing = False
            except (RedisError, OSError) as exc:
                if not failing:
                    logger.warning("presence heartbeat failed: %r", exc)
                failing = True
                self._stale = True
            # Counts that could not be written are rewritten as soon as Redis answers again,
            # not a whole interval later: until then the users' presence is wrong everywhere.
            await self._pause(min(interval, self._retry_interval) if self._stale else interval)

    async def _pause(self, seconds: float) -> None:
        """Sleep until the next beat; a failed write brings it forward to `retry_interval`."""
        assert self._wake is not None
        self._wake.clear()
        try:
            async with asyncio.timeout(seconds):
                await self._wake.wait()
        except TimeoutError:
            return
        await asyncio.sleep(self._retry_interval)

    async def _write(self, organization_id: int, user_id: int) -> None:
        assert self._lock is not None
        key = (organization_id, user_id)
        async with self._lock:
            count = max(self._counts[key], 0)
            try:
                result = await self._client().eval(
                    _SET_COUNT,
                    4,
                    self._key("procs"),
                    self._key(f"proc:{self.process_id}"),
                    self._key(f"user:{organization_id}:{user_id}"),
                    self._key(f"org:{organization_id}"),
                    self.process_id,
                    f"{organization_id}:{user_id}",
                    user_id,
                    count,
                    self._ttl_ms,
                )
            except (RedisError, OSError):
                # The heartbeat rewrites every count it holds once Redis answers again, a
                # zero included: that is why a zero is forgotten only once it is written.
                self._stale = True
                self._unsettled.add(key)
                if self._wake is not None:
                    self._wake.set()
                raise
            change, online = int(result[0]), bool(int(result[1]))
            if count == 0 and self._counts[key] <= 0:
                self._counts.pop(key, None)
            unsettled = key in self._unsettled
            self._unsettled.discard(key)
        if change:
            await _report(self._on_change, organization_id, user_id, change > 0)
        elif unsettled:
            # An earlier write of this user failed: whether its change was told is unknown,
            # and a restarted Redis may have lost the state it was measured against. Tell
            # the state as it is now; hearing it twice is harmless.
            await _report(self._on_change, organization_id, user_id, online)

    def _client(self) -> Redis:
        if self._redis is None:
            raise RuntimeError("RedisPresence.start() has not been called")
        return self._redis

    def _key(self, name: str) -> str:
        return f"{self._prefix}:{name}"
