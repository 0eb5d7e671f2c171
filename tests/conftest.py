"""Fixtures shared by every test package: real servers, started once per session."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from servers import (
    PostgresServer,
    RedisServer,
    postgres_url_from_env,
    redis_url_from_env,
)

# Every group commit on PostgreSQL, in this process and in the servers it starts,
# fails a run that writes a contact or conversation outside its declared keys.
os.environ.setdefault("INBOX_CHECK_WRITE_KEYS", "1")


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A Redis server shared by the session: INBOX_TEST_REDIS_URL or a throwaway one."""
    url = redis_url_from_env()
    if url:
        yield url
        return
    server = RedisServer()
    server.start()
    try:
        yield server.url
    finally:
        server.close()


@pytest.fixture()
def own_redis() -> Iterator[RedisServer]:
    """A redis-server owned by one test, which may stop and restart it."""
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """A PostgreSQL server: INBOX_TEST_DATABASE_URL or a throwaway cluster."""
    url = postgres_url_from_env()
    if url:
        yield url
        return
    server = PostgresServer()
    server.start()
    try:
        yield server.url
    finally:
        server.close()
