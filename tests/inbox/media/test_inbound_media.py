"""A customer's attachment is fetched from its platform after the webhook is answered,
kept, and served to its organization only."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from sqlmodel import col

from inbox.models import Media
from inbox.settings import Settings
from tests.inbox.media.conftest import (
    HTML,
    MAX_BYTES,
    PDF,
    PNG,
    PUBLIC_URL,
    SVG,
    first_attachment,
    new_media_id,
    whatsapp_image,
)
from tests.inbox.platforms import (
    events_of,
    instagram_body,
    instagram_channel,
    post_meta,
    post_twilio,
    rows,
    sms_body,
    sms_channel,
    unique_digits,
    wait_for,
    whatsapp_body,
    whatsapp_channel,
)


def settled(tenant: Any) -> dict[str, Any]:
    """The attachment once its fetch has an outcome."""
    return wait_for(
        lambda: (a := first_attachment(tenant))["media"]["status"] != "pending" and a,
        what="the attachment fetched",
    )


def test_a_whatsapp_image_is_fetched_after_the_answer_and_served_to_its_organization(
    media_service, media_tenant, other_media_tenant, platform
):
    channel = whatsapp_channel(media_tenant)
    media_id = new_media_id()
    released = threading.Event()
    platform.media.whatsapp(
        media_id, PNG, "image/png", token=channel.settings["access_token"], held=released
    )

    r = post_meta(media_service, "whatsapp", whatsapp_image(channel, media_id), channel.secret)

    assert r.status_code == 200, r.text
    assert first_attachment(media_tenant)["media"]["status"] == "pending"
    released.set()
    attachment = settled(media_tenant)
    assert attachment["media_id"] == media_id  # the platform's id stays as it came
    media = attachment["media"]
    assert media["status"] == "stored"
    assert (media["content_type"], media["size"]) == ("image/png", len(PNG))

    served = media_tenant.api.get(f"/api/media/{media['id']}")
    assert served.status_code == 200
    assert served.content == PNG
    assert served.headers["content-type"] == "image/png"
    assert served.headers["x-content-type-options"] == "nosniff"
    assert served.headers["content-disposition"].startswith("inline")

    assert other_media_tenant.api.get(f"/api/media/{media['id']}").status_code == 404
    assert other_media_tenant.api.get(f"/api/media/{media['id']}/link").status_code == 404
    assert media_tenant.api.get("/api/media/no-such-media").status_code == 404
    assert media_service.client().get(f"/api/media/{media['id']}").status_code == 401

    [updated] = events_of(media_service, media_tenant.org_id, "message.updated")
    assert updated.data["attachments"][0]["media"]["status"] == "stored"


def test_a_platform_that_fails_is_asked_again_until_it_serves_the_file(
    media_service, media_tenant, platform
):
    channel = sms_channel(media_tenant)
    url = platform.media.twilio(
        channel.settings["account_sid"], channel.settings["auth_token"], PNG, "image/png",
        failures=1,
    )
    sid = f"MM{new_media_id()}"
    body = sms_body(channel, "mms.txt", MediaUrl0=url, NumMedia="1", MessageSid=sid)
    body = body.replace(b"MediaUrl1=", b"Ignored1=")

    r = post_twilio(
        media_service, "/webhooks/twilio/sms", body, channel.settings["auth_token"],
        signed_url=f"{PUBLIC_URL}/webhooks/twilio/sms",
    )

    assert r.status_code == 200, r.text
    media = settled(media_tenant)["media"]
    assert media["status"] == "stored"
    [row] = rows(media_service, Media, col(Media.id) == media["id"])
    assert row.attempts == 2


def test_a_file_over_the_limit_is_marked_failed_and_the_message_stays(
    media_service, media_tenant, platform
):
    channel = instagram_channel(media_tenant)
    url = platform.media.cdn(PNG + bytes(MAX_BYTES), "image/png")
    body = instagram_body(channel, "attachments.json").replace(
        b"https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=17949133234835617&signature=AbxQ",
        url.encode(),
    )

    r = post_meta(media_service, "instagram", body, channel.secret)

    assert r.status_code == 200, r.text
    media = settled(media_tenant)["media"]
    assert media["status"] == "failed"
    assert "over the limit" in media["error"]
    assert media_tenant.api.get(f"/api/media/{media['id']}").status_code == 404


@pytest.mark.backend("sqlite")  # serving reads the type stored, on either database
def test_an_svg_or_html_image_is_never_shown_from_our_origin(
    media_service, media_tenant, platform
):
    channel = whatsapp_channel(media_tenant)
    for data in (SVG, HTML):
        media_id = new_media_id()
        platform.media.whatsapp(media_id, data, "image/png", token=channel.settings["access_token"])
        post_meta(media_service, "whatsapp", whatsapp_image(channel, media_id), channel.secret)
        media = wait_for(
            lambda wanted=media_id: (a := first_attachment(media_tenant))["media_id"] == wanted
            and a["media"]["status"] == "stored"
            and a["media"],
            what="the file stored",
        )

        served = media_tenant.api.get(f"/api/media/{media['id']}")

        assert served.content == data
        assert served.headers["content-type"] == "application/octet-stream"
        assert served.headers["content-disposition"].startswith("attachment")
        assert served.headers["x-content-type-options"] == "nosniff"
        assert "sandbox" in served.headers["content-security-policy"]


def test_a_document_with_a_very_long_name_arrives_and_is_kept_under_a_shorter_one(
    media_service, media_tenant, platform
):
    channel = whatsapp_channel(media_tenant)
    media_id = new_media_id()
    token = channel.settings["access_token"]
    platform.media.whatsapp(media_id, PDF, "application/pdf", token=token)
    body = json.loads(whatsapp_body(channel, "document.json"))
    message = body["entry"][0]["changes"][0]["value"]["messages"][0]
    message["id"] = f"wamid.MEDIA{unique_digits(12)}"
    long_name = "report-" + "x" * 389 + ".pdf"
    message["document"] = {
        "id": media_id,
        "filename": long_name,
        "mime_type": "application/" + "x" * 300,
    }

    r = post_meta(media_service, "whatsapp", json.dumps(body).encode(), channel.secret)

    assert r.status_code == 200, r.text
    attachment = settled(media_tenant)
    assert attachment["filename"] == long_name  # the message keeps what the customer sent
    media = attachment["media"]
    assert media["status"] == "stored"
    assert media["filename"] == long_name[:255]
    assert media["content_type"] == "application/pdf"  # from the bytes


def test_an_attachment_url_at_a_metadata_address_is_never_read(media_service, media_tenant):
    channel = instagram_channel(media_tenant)
    body = instagram_body(channel, "attachments.json").replace(
        b"https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=17949133234835617&signature=AbxQ",
        b"http://169.254.169.254/latest/meta-data/iam/security-credentials/",
    )

    r = post_meta(media_service, "instagram", body, channel.secret)

    assert r.status_code == 200, r.text
    media = settled(media_tenant)["media"]
    assert media["status"] == "failed"
    assert "not allowed" in media["error"]
    [row] = rows(media_service, Media, col(Media.id) == media["id"])
    assert (row.storage_key, row.attempts) == (None, 1)
    assert media_tenant.api.get(f"/api/media/{media['id']}").status_code == 404


def test_attachments_are_read_from_private_addresses_only_when_allowed():
    assert Settings.model_fields["media_allow_private"].default is False
