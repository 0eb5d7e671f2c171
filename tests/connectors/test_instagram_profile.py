"""Reading an Instagram sender's profile from the Graph API's User Profile API,
against a recording HTTP server."""

from __future__ import annotations

import socket

import httpx
import pytest

from connectors.errors import ConnectorError
from connectors.instagram_profile import Profile, ProfileError, fetch_profile
from tests.connectors.fake_platform import (
    FakePlatform,
    Reply,
    graph_error,
    instagram_profile,
    rate_limited,
    server_error,
    slow,
)
from tests.connectors.helpers import instagram_settings, whatsapp_settings

USER = "1254459154682919"


async def test_the_profile_is_read_with_the_channels_token(
    platform: FakePlatform, client: httpx.AsyncClient
) -> None:
    platform.profile(
        USER, instagram_profile(USER, "Sheena Nelson", "sheena.nelson", "https://cdn.example/p.jpg")
    )

    profile = await fetch_profile(
        client, platform.base_url + "/v21.0/", instagram_settings(), USER
    )

    assert profile == Profile("Sheena Nelson", "sheena.nelson", "https://cdn.example/p.jpg")
    [request] = platform.requests
    assert (request.method, request.path) == ("GET", f"/v21.0/{USER}")
    assert httpx.QueryParams(request.query) == httpx.QueryParams(
        {"fields": "name,username,profile_pic"}
    )
    assert request.headers["authorization"] == "Bearer ig-access-token"
    # The token travels in the header only, never in the URL.
    assert "ig-access-token" not in request.query


async def test_fields_a_person_left_unset_are_none(
    platform: FakePlatform, client: httpx.AsyncClient
) -> None:
    platform.profile(USER, Reply(body={"name": None, "username": "  plainuser ", "id": USER}))

    profile = await fetch_profile(client, platform.base_url, instagram_settings(), USER)

    assert profile == Profile(name=None, username="plainuser", profile_pic=None)


@pytest.mark.parametrize(
    ("reply", "retryable", "code"),
    [
        (rate_limited(retry_after=7), True, "4"),
        (Reply(status=429, body=b"slow down", headers={"Retry-After": "7"}), True, "http_429"),
        (server_error(), True, "2"),
        (Reply(status=503, body=b""), True, "http_503"),
        # Graph's rate limits come as HTTP 400 too, named by their code.
        (graph_error(613, "Calls to this api have exceeded the rate limit"), True, "613"),
        (Reply(status=404, body={"error": {"message": "Not found", "code": 803}}), False, "803"),
        (graph_error(100, "Unsupported get request", subcode=33), False, "100"),
        (graph_error(190, "Invalid OAuth access token", status=401), False, "190"),
        (graph_error(10, "User consent is required to access user profile", status=403),
         False, "10"),
    ],
)
async def test_what_may_succeed_later_is_retryable_and_nothing_else(
    platform: FakePlatform,
    client: httpx.AsyncClient,
    reply: Reply,
    retryable: bool,
    code: str,
) -> None:
    platform.profile(USER, reply)

    with pytest.raises(ProfileError) as info:
        await fetch_profile(client, platform.base_url, instagram_settings(), USER)

    error = info.value
    assert isinstance(error, ConnectorError)
    assert (error.retryable, error.code, error.status_code) == (retryable, code, reply.status)
    if "Retry-After" in reply.headers:
        assert error.retry_after == 7.0


async def test_a_success_that_is_not_a_profile_is_not_retried(
    platform: FakePlatform, client: httpx.AsyncClient
) -> None:
    platform.profile(USER, Reply(body=b"<html>hello</html>"))
    with pytest.raises(ProfileError) as info:
        await fetch_profile(client, platform.base_url, instagram_settings(), USER)
    assert (info.value.retryable, info.value.code) == (False, "bad_response")


async def test_a_timeout_and_a_refused_connection_are_retryable(
    platform: FakePlatform,
) -> None:
    platform.profile(USER, slow(1.0, then=instagram_profile(USER, "Late", "late")))
    async with httpx.AsyncClient(timeout=0.2) as client:
        with pytest.raises(ProfileError) as info:
            await fetch_profile(client, platform.base_url, instagram_settings(), USER)
    assert (info.value.retryable, info.value.code) == (True, "timeout")

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with httpx.AsyncClient(timeout=1) as client:
        with pytest.raises(ProfileError) as info:
            await fetch_profile(client, f"http://127.0.0.1:{port}", instagram_settings(), USER)
    assert (info.value.retryable, info.value.code) == (True, "connect_error")


async def test_an_id_is_one_path_segment(
    platform: FakePlatform, client: httpx.AsyncClient
) -> None:
    with pytest.raises(ProfileError):
        await fetch_profile(client, platform.base_url + "/v21.0", instagram_settings(), "../me")
    [request] = platform.requests
    assert request.path == "/v21.0/..%2Fme"


async def test_settings_of_another_kind_are_refused(client: httpx.AsyncClient) -> None:
    with pytest.raises(TypeError):
        await fetch_profile(client, "http://127.0.0.1:9", whatsapp_settings(), USER)
