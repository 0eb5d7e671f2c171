from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from tests.connectors.fake_platform import FakePlatform


@pytest.fixture(scope="module")
def platform_server() -> Iterator[FakePlatform]:
    with FakePlatform() as server:
        yield server


@pytest.fixture()
def platform(platform_server: FakePlatform) -> FakePlatform:
    """The module's fake platform API, with no script and no recorded requests."""
    platform_server.reset()
    return platform_server


@pytest.fixture()
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=httpx.Timeout(2.0, connect=2.0)) as http:
        yield http
