"""An agent uploads a file and attaches it to a reply; the platform is given a signed
link to it on the service's public URL, and the link serves the file to no one else
once it has expired or been altered."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.inbox.media.conftest import MAX_BYTES, PDF, PNG, PUBLIC_URL, SVG
from tests.inbox.platforms import (
    instagram_body,
    instagram_channel,
    post_meta,
    post_twilio,
    sms_body,
    sms_channel,
    wait_for,
    whatsapp_channel,
    whatsapp_text,
)


def upload(api: Any, data: bytes, filename: str = "photo.png", type: str = "image/png") -> Any:
    return api.post("/api/media", files={"file": (filename, data, type)})


def opened(service: Any, tenant: Any, kind: str) -> tuple[Any, int]:
    """A channel of ``kind`` and the conversation a customer opened on it."""
    if kind == "whatsapp":
        channel = whatsapp_channel(tenant)
        post_meta(service, kind, whatsapp_text(channel, "wamid.OPEN1", "hello"), channel.secret)
    elif kind == "instagram":
        channel = instagram_channel(tenant)
        post_meta(service, kind, instagram_body(channel, "text.json"), channel.secret)
    else:
        channel = sms_channel(tenant)
        path = "/webhooks/twilio/sms"
        post_twilio(service, path, sms_body(channel, "sms.txt"), channel.settings["auth_token"],
                    signed_url=f"{PUBLIC_URL}{path}")
    [conversation] = tenant.api.get("/api/conversations").json()["data"]
    return channel, conversation["id"]


def sent_to(platform: Any, channel: Any) -> Any:
    def ours(r: Any) -> bool:
        if r.method != "POST":
            return False
        if r.path.endswith("/Messages.json"):
            return bool(r.form().get("From") == [channel.key])
        return bool(r.path == f"/{channel.key}/messages")

    return wait_for(lambda: [r for r in platform.requests if ours(r)], what="the send")


def served_from(service: Any, url: str) -> Any:
    assert url.startswith(f"{PUBLIC_URL}/api/media/")
    parts = urlsplit(url)
    return service.client().get(f"{parts.path}?{parts.query}")


@pytest.mark.parametrize("kind", ["whatsapp", "instagram", "sms"])
def test_an_uploaded_image_is_sent_in_each_platform_s_form(
    media_service, media_tenant, platform, kind
):
    channel, conversation_id = opened(media_service, media_tenant, kind)
    r = upload(media_tenant.api, PNG)
    assert r.status_code == 201, r.text
    media = r.json()
    assert media["status"] == "stored"
    assert (media["content_type"], media["size"]) == ("image/png", len(PNG))
    text = "" if kind == "instagram" else "Here is the label"

    r = media_tenant.api.post(
        f"/api/conversations/{conversation_id}/messages",
        json={"content": text, "attachments": [{"media_id": media["id"]}]},
    )

    assert r.status_code == 201, r.text
    assert r.json()["attachments"][0]["media"]["id"] == media["id"]
    [request] = sent_to(platform, channel)
    if kind == "whatsapp":
        body = request.json()
        assert body["type"] == "image"
        assert body["image"]["caption"] == text
        url = body["image"]["link"]
    elif kind == "instagram":
        attachment = request.json()["message"]["attachment"]
        assert attachment["type"] == "image"
        url = attachment["payload"]["url"]
    else:
        form = request.form()
        assert form["Body"] == [text]
        [url] = form["MediaUrl"]
    served = served_from(media_service, url)
    assert served.status_code == 200
    assert served.content == PNG


def test_a_document_goes_to_whatsapp_as_a_document_with_its_name(
    media_service, media_tenant, platform
):
    channel, conversation_id = opened(media_service, media_tenant, "whatsapp")
    media = upload(media_tenant.api, PDF, "invoice 42.pdf", "application/pdf").json()

    media_tenant.api.post(
        f"/api/conversations/{conversation_id}/messages",
        json={"attachments": [{"media_id": media["id"]}]},
    )

    [request] = sent_to(platform, channel)
    body = request.json()
    assert body["type"] == "document"
    assert body["document"]["filename"] == "invoice 42.pdf"
    served = served_from(media_service, body["document"]["link"])
    assert served.headers["content-type"] == "application/pdf"
    assert served.headers["content-disposition"].startswith("attachment")


@pytest.mark.backend("sqlite")  # nothing in it depends on the database
def test_a_link_altered_or_expired_serves_nothing(media_service, media_tenant):
    media = upload(media_tenant.api, PNG).json()
    link = media_tenant.api.get(f"/api/media/{media['id']}/link").json()
    assert media_service.client().get(link["url"]).content == PNG
    query = parse_qs(urlsplit(link["url"]).query)
    expires, sig = query["expires"][0], query["sig"][0]
    path = f"/api/media/{media['id']}"
    anyone = media_service.client()

    assert anyone.get(path, params={"expires": expires, "sig": "0" * 64}).status_code == 404
    assert anyone.get(path, params={"expires": int(expires) + 60, "sig": sig}).status_code == 404
    assert anyone.get(path, params={"expires": "1000", "sig": sig}).status_code == 404
    # Digits int() does not read, and signatures that are not hex, are no link either.
    assert anyone.get(path, params={"expires": "\u00b2", "sig": sig}).status_code == 404
    assert anyone.get(path, params={"expires": "\u0663" * 10, "sig": sig}).status_code == 404
    assert anyone.get(path, params={"expires": expires, "sig": "\u00e9" * 64}).status_code == 404
    assert anyone.get(path, params={"expires": expires, "sig": sig[:-1]}).status_code == 404
    other = upload(media_tenant.api, PNG).json()
    assert anyone.get(f"/api/media/{other['id']}", params={"expires": expires, "sig": sig}
                      ).status_code == 404


@pytest.mark.backend("sqlite")  # nothing in it depends on the database
def test_uploads_past_the_limit_empty_or_of_no_known_type_are_refused(media_tenant):
    api = media_tenant.api
    too_large = upload(api, PNG + bytes(MAX_BYTES))
    assert too_large.status_code == 413
    assert too_large.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
    for data in (b"", bytes(range(256)) * 4, SVG, b"<html><script>alert(1)</script></html>"):
        r = upload(api, data)
        assert r.status_code == 422, data[:20]
        assert r.json()["error"]["code"] == "VALIDATION_ERROR"
    no_file = api.post("/api/media", files={"other": ("a.png", PNG, "image/png")})
    assert no_file.status_code == 422
    as_is = api.post("/api/media", content=PNG, params={"filename": "raw.png"},
                     headers={"Content-Type": "image/png"})
    assert as_is.status_code == 201
    assert as_is.json()["filename"] == "raw.png"


def test_a_reply_may_attach_only_its_own_organization_s_stored_uploads(
    media_service, media_tenant, other_media_tenant
):
    _channel, conversation_id = opened(media_service, media_tenant, "whatsapp")
    theirs = upload(other_media_tenant.api, PNG).json()
    path = f"/api/conversations/{conversation_id}/messages"

    for media_id in (theirs["id"], "no-such-media"):
        r = media_tenant.api.post(path, json={"attachments": [{"media_id": media_id}]})
        assert r.status_code == 422
        assert r.json()["error"]["details"]["fields"][0]["field"] == "attachments.0.media_id"
    both = {"media_id": theirs["id"], "url": "https://example.com/a.png"}
    assert media_tenant.api.post(path, json={"attachments": [both]}).status_code == 422


@pytest.mark.backend("sqlite")  # nothing in it depends on the database
def test_without_a_public_url_an_upload_cannot_be_sent(service, tenant):
    conversation = tenant.conversation()
    media = upload(tenant.api, PNG).json()
    path = f"/api/conversations/{conversation.id}/messages"

    r = tenant.api.post(path, json={"attachments": [{"media_id": media["id"]}]})

    assert r.status_code == 422
    assert "INBOX_PUBLIC_URL" in r.json()["error"]["message"]
    note = tenant.api.post(path, json={"attachments": [{"media_id": media["id"]}], "private": True})
    assert note.status_code == 201


@pytest.mark.backend("sqlite")  # nothing in it depends on the database
def test_a_viewer_is_shown_attachments_too(media_tenant):
    media = upload(media_tenant.api, PNG).json()
    _, viewer = media_tenant.user("viewer")

    link = viewer.get(f"/api/media/{media['id']}/link")

    assert link.status_code == 200, link.text
    assert viewer.get(link.json()["url"]).content == PNG
    assert viewer.get(f"/api/media/{media['id']}").content == PNG
