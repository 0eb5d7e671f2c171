"""Reading an attachment from the platform that holds it, with its credentials."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from connectors.media import MediaFetchError, fetch_media
from connectors.safe_urls import guarded_client
from tests.connectors.helpers import (
    TWILIO_ACCOUNT_SID,
    TWILIO_TOKEN,
    instagram_settings,
    sms_settings,
    whatsapp_settings,
)

PHOTO = b"\xff\xd8\xff\xe0" + bytes(100)


@pytest.fixture()
async def remote() -> AsyncIterator[httpx.AsyncClient]:
    """The client attachments' URLs are read with: the fake platform is on 127.0.0.1."""
    async with guarded_client(allow_private=True, timeout=2.0) as http:
        yield http


async def test_whatsapp_media_is_read_in_two_steps_with_the_channel_s_token(
    platform, client, remote
):
    platform.media.whatsapp("4401", PHOTO, "image/jpeg", token="wa-access-token")

    fetched = await fetch_media(
        client, platform.base_url, whatsapp_settings(), "4401", max_bytes=1024, remote=remote
    )

    assert (fetched.data, fetched.content_type) == (PHOTO, "image/jpeg")
    metadata, data = platform.requests
    assert metadata.path == "/4401"
    assert data.path == "/whatsapp-media/4401"
    assert {metadata.headers["authorization"], data.headers["authorization"]} == {
        "Bearer wa-access-token"
    }


async def test_a_wrong_token_is_refused_and_not_worth_a_retry(platform, client, remote):
    platform.media.whatsapp("4402", PHOTO, "image/jpeg", token="another-token")

    with pytest.raises(MediaFetchError) as refused:
        await fetch_media(
            client, platform.base_url, whatsapp_settings(), "4402", max_bytes=1024, remote=remote
        )

    assert refused.value.retryable is False


async def test_twilio_media_is_read_with_the_account_s_credentials(platform, client, remote):
    url = platform.media.twilio(TWILIO_ACCOUNT_SID, TWILIO_TOKEN, PHOTO, "image/jpeg")
    wrong = platform.media.twilio(TWILIO_ACCOUNT_SID, "not-the-token", PHOTO, "image/jpeg")

    fetched = await fetch_media(client, "", sms_settings(), url, max_bytes=1024, remote=remote)

    assert fetched.data == PHOTO
    with pytest.raises(MediaFetchError):
        await fetch_media(client, "", sms_settings(), wrong, max_bytes=1024, remote=remote)


async def test_a_server_error_is_worth_a_retry_and_a_large_file_is_not(platform, client, remote):
    flaky = platform.media.cdn(PHOTO, "image/jpeg", failures=1)
    large = platform.media.cdn(PHOTO * 20, "image/jpeg")

    with pytest.raises(MediaFetchError) as first:
        await fetch_media(
            client, "", instagram_settings(), flaky, max_bytes=1024, remote=remote
        )
    assert first.value.retryable is True
    again = await fetch_media(
        client, "", instagram_settings(), flaky, max_bytes=1024, remote=remote
    )
    assert again.data == PHOTO
    with pytest.raises(MediaFetchError) as too_large:
        await fetch_media(
            client, "", instagram_settings(), large, max_bytes=1024, remote=remote
        )
    assert (too_large.value.code, too_large.value.retryable) == ("too_large", False)


async def test_an_attachment_url_on_the_service_s_own_network_is_never_read(platform, client):
    url = platform.media.cdn(PHOTO, "image/jpeg")
    redirected = platform.media.redirect("http://169.254.169.254/latest/meta-data/")

    async with guarded_client(allow_private=False, timeout=2.0) as guarded:
        with pytest.raises(MediaFetchError) as private:
            await fetch_media(
                client, "", instagram_settings(), url, max_bytes=1024, remote=guarded
            )
    async with guarded_client(allow_private=True, timeout=2.0) as allowing:
        with pytest.raises(MediaFetchError) as metadata:
            await fetch_media(
                client, "", instagram_settings(), redirected, max_bytes=1024, remote=allowing
            )

    assert (private.value.code, private.value.retryable) == ("unsafe_url", False)
    assert "loopback or private" in private.value.message
    assert (metadata.value.code, metadata.value.retryable) == ("unsafe_url", False)
    assert [r.path for r in platform.requests] == [redirected.split(platform.base_url)[1]]


async def test_a_redirect_on_the_same_host_is_followed_with_the_credentials(
    platform, client, remote
):
    url = platform.media.twilio(TWILIO_ACCOUNT_SID, TWILIO_TOKEN, PHOTO, "image/jpeg")

    fetched = await fetch_media(
        client, "", sms_settings(), platform.media.redirect(url), max_bytes=1024, remote=remote
    )

    assert fetched.data == PHOTO
