"""The algorithm against a real Redis: budgets shared exactly by every limiter on it,
the script reloaded when Redis forgot it, and requests let through when Redis is down."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from servers import free_port

from inbox.ratelimit.limiter import LIMITER_ERRORS, MemoryLimiter, RedisLimiter
from inbox.ratelimit.rules import Rate, parse_rates

pytestmark = pytest.mark.redis

PER_MINUTE = Rate(6, 60.0)


@pytest.fixture()
async def two(redis_url: str) -> AsyncIterator[tuple[RedisLimiter, RedisLimiter]]:
    """Two limiters, as two processes hold them, on one Redis."""
    prefix = f"test-{uuid.uuid4().hex}:"
    pair = (RedisLimiter(redis_url, prefix=prefix), RedisLimiter(redis_url, prefix=prefix))
    for limiter in pair:
        await limiter.start()
    yield pair
    for limiter in pair:
        await limiter.close()


async def test_two_limiters_on_one_redis_share_each_budget_exactly(two):
    a, b = two
    decisions = [await (a if n % 2 else b).hit("read:alice", PER_MINUTE) for n in range(7)]
    assert all(d is not None for d in decisions)
    assert [d.allowed for d in decisions] == [True] * 6 + [False]
    assert [d.remaining for d in decisions] == [5, 4, 3, 2, 1, 0, 0]
    assert 1 <= decisions[-1].retry_after <= 10
    # Another key, another budget.
    other = await a.hit("read:bob", PER_MINUTE)
    assert other is not None and (other.allowed, other.remaining) == (True, 5)


async def test_a_script_redis_forgot_is_loaded_again(two, redis_url):
    a, _b = two
    assert (await a.hit("write:carol", PER_MINUTE)).remaining == 5
    redis = Redis.from_url(redis_url)
    await redis.script_flush()
    await redis.aclose()
    decision = await a.hit("write:carol", PER_MINUTE)
    assert decision is not None and decision.remaining == 4


async def test_requests_are_let_through_counted_and_logged_when_redis_is_down(caplog):
    limiter = RedisLimiter(f"redis://127.0.0.1:{free_port()}/0")
    await limiter.start()
    before = LIMITER_ERRORS._value.get()
    with caplog.at_level(logging.WARNING, logger="inbox.ratelimit"):
        decisions = [await limiter.hit("read:dave", Rate(1, 60.0)) for _ in range(5)]
    await limiter.close()
    assert decisions == [None] * 5
    assert LIMITER_ERRORS._value.get() - before == 5
    # One warning, not one per request.
    [warning] = [r for r in caplog.records if r.name == "inbox.ratelimit"]
    assert "let through" in warning.getMessage()


async def test_without_redis_one_process_keeps_the_budgets():
    limiter = MemoryLimiter()
    decisions = [await limiter.hit("auth:addr:x", Rate(3, 60.0)) for _ in range(4)]
    assert [(d.allowed, d.remaining) for d in decisions] == [
        (True, 2), (True, 1), (True, 0), (False, 0)]


@pytest.mark.parametrize(("setting", "error"), [
    ("read=5", "expected a count of at least 1"),
    ("reads=5/minute", "expected category=count/period"),
    ("write=0/minute", "expected a count of at least 1"),
    ("auth=10/fortnight", "expected a count of at least 1"),
])
def test_a_wrong_setting_is_named_at_start_up(setting, error):
    with pytest.raises(ValueError, match=error):
        parse_rates(setting)


def test_a_setting_changes_only_the_categories_it_names():
    rates = parse_rates("read=100/5minutes,write=off")
    assert rates["read"] == Rate(100, 300.0)
    assert rates["auth"] == Rate(10, 60.0)
    assert "write" not in rates
    assert parse_rates("off") == {}
