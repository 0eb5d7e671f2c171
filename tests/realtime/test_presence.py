from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError

from realtime import MemoryPresence, Presence, RedisPresence, create_presence

Change = tuple[int, int, bool]


class Recorder:
    def __init__(self) -> None:
        self.changes: list[Change] = []

    async def __call__(self, organization_id: int, user_id: int, online: bool) -> None:
        self.changes.append((organization_id, user_id, online))


async def eventually(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


@pytest.fixture()
async def started() -> AsyncIterator[list[Presence]]:
    instances: list[Presence] = []
    yield instances
    for presence in instances:
        await presence.stop()


async def start(started: list[Presence], presence: Presence) -> Presence:
    await presence.start()
    started.append(presence)
    return presence


async def test_first_connection_online_last_one_offline(
    backend_url: str, prefix: str, started: list[Presence]
) -> None:
    recorder = Recorder()
    presence = await start(started, create_presence(backend_url, recorder, prefix=prefix))
    await presence.connect(1, 7)
    await presence.connect(1, 7)
    await presence.connect(2, 7)
    assert recorder.changes == [(1, 7, True), (2, 7, True)]
    assert await presence.online(1) == {7}
    await presence.disconnect(1, 7)
    assert recorder.changes == [(1, 7, True), (2, 7, True)]
    await presence.disconnect(1, 7)
    assert recorder.changes[-1] == (1, 7, False)
    assert await presence.online(1) == set()
    assert await presence.online(2) == {7}
    # A disconnect without a connect is ignored rather than going negative.
    await presence.disconnect(1, 8)
    assert len(recorder.changes) == 3


def test_memory_is_the_default() -> None:
    assert isinstance(create_presence(None), MemoryPresence)
    assert isinstance(create_presence("redis://localhost:6379/0"), RedisPresence)


@pytest.mark.redis
async def test_two_processes_agree_on_transitions(
    redis_url: str, prefix: str, started: list[Presence]
) -> None:
    in_a, in_b = Recorder(), Recorder()
    a = await start(started, RedisPresence(redis_url, in_a, prefix=prefix))
    b = await start(started, RedisPresence(redis_url, in_b, prefix=prefix))
    await a.connect(1, 7)
    await b.connect(1, 7)
    await b.connect(1, 8)
    assert in_a.changes == [(1, 7, True)]
    assert in_b.changes == [(1, 8, True)]
    assert await a.online(1) == await b.online(1) == {7, 8}

    await a.disconnect(1, 7)
    # Still connected through the other process.
    assert in_a.changes == [(1, 7, True)]
    assert await a.online(1) == {7, 8}
    await b.disconnect(1, 7)
    assert in_b.changes == [(1, 8, True), (1, 7, False)]
    assert await a.online(1) == {8}


@pytest.mark.redis
async def test_the_users_of_a_crashed_process_go_offline(
    redis_url: str, prefix: str, started: list[Presence]
) -> None:
    survivor_saw = Recorder()
    survivor = await start(started, RedisPresence(redis_url, survivor_saw, prefix=prefix, ttl=0.6))
    doomed = subprocess.Popen(
        [sys.executable, "-c", _PROCESS, redis_url, prefix],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert doomed.stdout is not None
        assert doomed.stdout.readline().strip() == "ready"
        await survivor.connect(1, 8)
        assert await survivor.online(1) == {8, 9}
        doomed.kill()
        doomed.wait()
        await eventually(lambda: (1, 9, False) in survivor_saw.changes)
        assert await survivor.online(1) == {8}
        assert survivor_saw.changes == [(1, 8, True), (1, 9, False)]
    finally:
        doomed.kill()
        doomed.wait()
        assert doomed.stdout is not None
        doomed.stdout.close()


_PROCESS = textwrap.dedent(
    """
    import asyncio, sys
    from realtime import RedisPresence

    async def main():
        presence = RedisPresence(sys.argv[1], prefix=sys.argv[2], ttl=0.6)
        await presence.start()
        await presence.connect(1, 9)
        print("ready", flush=True)
        await asyncio.sleep(3600)

    asyncio.run(main())
    """
)


@pytest.mark.redis
async def test_entries_lost_by_redis_are_written_again(
    redis_url: str, prefix: str, started: list[Presence]
) -> None:
    a = await start(started, RedisPresence(redis_url, prefix=prefix, ttl=60))
    await a.connect(1, 7)
    raw = Redis.from_url(redis_url)
    try:
        keys = [key async for key in raw.scan_iter(f"{prefix}:*")]
        await raw.delete(*keys)
    finally:
        await raw.aclose()
    assert await a.online(1) == set()
    assert isinstance(a, RedisPresence)
    await a.heartbeat()
    assert await a.online(1) == {7}


@pytest.mark.redis
async def test_a_user_who_leaves_while_redis_is_unreachable_goes_offline_once_it_answers(
    own_redis: Any, started: list[Presence]
) -> None:
    recorder = Recorder()
    observer = Recorder()
    # Two processes: the second one only watches.
    leaving = await start(started, RedisPresence(own_redis.url, recorder, retry_interval=0.1))
    watching = await start(started, RedisPresence(own_redis.url, observer, retry_interval=0.1))
    await leaving.connect(1, 7)
    await leaving.connect(1, 8)
    own_redis.stop()
    with pytest.raises(RedisError):
        await leaving.disconnect(1, 7)
    own_redis.start()
    # Redis came back empty: the zero is written again and told, the other user stays.
    await eventually(lambda: (1, 7, False) in recorder.changes)
    assert await watching.online(1) == {8}
    assert await leaving.online(1) == {8}
    assert (1, 8, False) not in recorder.changes
