from __future__ import annotations

import socket
from datetime import UTC, datetime

import httpx
import pytest

from connectors.errors import SendError
from connectors.meta import read_graph_error
from connectors.sending import post, retry_after
from tests.connectors.fake_platform import FakePlatform, Reply


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("120", 120.0),
        ("1.5", 1.5),
        ("-3", 0.0),
        ("nan", None),
        ("soon", None),
        ("Wed, 21 Oct 2015 07:28:30 GMT", 30.0),
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),
    ],
)
def test_retry_after(value: str | None, expected: float | None) -> None:
    now = datetime(2015, 10, 21, 7, 28, tzinfo=UTC)
    assert retry_after(value, now) == expected


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_connection_refused_is_retryable_and_not_sent() -> None:
    async with httpx.AsyncClient(timeout=1) as client:
        with pytest.raises(SendError) as info:
            await post(client, f"http://127.0.0.1:{free_port()}/x", read_graph_error, json={})
    assert info.value.retryable
    assert info.value.code == "connect_error"


async def test_success_without_json_is_not_retried(platform: FakePlatform) -> None:
    platform.enqueue(Reply(status=200, body=b"<html>ok</html>"))
    async with httpx.AsyncClient(timeout=1) as client:
        with pytest.raises(SendError) as info:
            await post(client, platform.base_url + "/v1/1/messages", read_graph_error, json={})
    assert not info.value.retryable
    assert info.value.code == "bad_response"


@pytest.mark.parametrize(
    ("status", "retryable"),
    [
        (400, False),
        (401, False),
        (403, False),
        (404, False),
        (408, True),
        (429, True),
        (500, True),
        (502, True),
        (503, True),
        (504, True),
    ],
)
async def test_status_classification(platform: FakePlatform, status: int, retryable: bool) -> None:
    platform.enqueue(Reply(status=status, body=b"not json"))
    async with httpx.AsyncClient(timeout=1) as client:
        with pytest.raises(SendError) as info:
            await post(client, platform.base_url + "/x", read_graph_error, json={})
    assert info.value.retryable is retryable
    assert info.value.code == f"http_{status}"
    assert info.value.status_code == status


async def test_graph_transient_flag_is_retryable(platform: FakePlatform) -> None:
    platform.enqueue(
        Reply(
            status=400, body={"error": {"message": "Temporary", "code": 999, "is_transient": True}}
        )
    )
    async with httpx.AsyncClient(timeout=1) as client:
        with pytest.raises(SendError) as info:
            await post(client, platform.base_url + "/x", read_graph_error, json={})
    assert info.value.retryable
    assert info.value.code == "999"
