"""Attachments in the console: a customer's photo appears as a thumbnail once it has
been fetched, and opens in full; an agent attaches a file and the platform gets it."""

from __future__ import annotations

import json
import struct
import time
import zlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser.conftest import problems
from tests.browser.console import eventually, message, messages, open_conversation
from tests.browser.server import ConsoleServer
from tests.connectors.fake_platform import FakePlatform
from tests.inbox.platforms import whatsapp_body


def png(width: int = 24, height: int = 16) -> bytes:
    """A real PNG a browser draws: a small orange rectangle."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + b"\xff\x88\x00" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
            + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def console_server(
    tmp_path_factory: pytest.TempPathFactory, fake_platform: FakePlatform
) -> Iterator[ConsoleServer]:
    """The console's server with a public URL: the platforms fetch agents' files there."""
    server = ConsoleServer(tmp_path_factory.mktemp("attachments"), fake_platform)
    server.env["INBOX_PUBLIC_URL"] = server.url
    try:
        server.seed()
        server.start()
        server.seed_after_start()
        yield server
    finally:
        server.close()


def send_whatsapp_image(server: ConsoleServer, phone: str, name: str, media_id: str) -> None:
    body = json.loads(whatsapp_body(server.whatsapp, "image.json"))
    value = body["entry"][0]["changes"][0]["value"]
    value["contacts"] = [{"profile": {"name": name}, "wa_id": phone.lstrip("+")}]
    value["messages"][0].update({
        "from": phone.lstrip("+"), "id": f"wamid.image{media_id}",
        "timestamp": str(int(time.time()) + 1),
        "image": {"id": media_id, "mime_type": "image/png", "caption": "The parcel, dented"},
    })
    server._post_whatsapp(json.dumps(body).encode())


def test_a_customer_s_photo_appears_as_a_thumbnail_that_opens_in_full(
    console_server: ConsoleServer, new_page: Any, signed_in: Any, screenshot: Any
) -> None:
    phone = "+15550007001"
    photo = png()
    console_server.fake_platform.media.whatsapp(
        "880001", photo, "image/png", token=console_server.whatsapp.settings["access_token"]
    )
    console_server.send_whatsapp_text(phone, "My parcel arrived damaged", name="Ivy Image")
    page = new_page()
    signed_in(page, console_server.agent)
    open_conversation(page, "Ivy Image")

    send_whatsapp_image(console_server, phone, "Ivy Image", "880001")

    thumbnail = messages(page).get_by_role("img", name="The parcel, dented")
    expect(thumbnail).to_be_visible()
    eventually(lambda: thumbnail.evaluate("img => img.complete && img.naturalWidth") == 24,
               "the image drawn from its signed link")
    with page.expect_popup() as opened:
        messages(page).get_by_role("link", name="Open The parcel, dented in a new tab").click()
    full = opened.value
    full.wait_for_load_state()
    assert "/api/media/" in full.url
    screenshot(page, "attachment-thumbnail")
    assert problems(page).errors == []


def test_an_agent_attaches_a_file_and_the_platform_receives_a_link_to_it(
    console_server: ConsoleServer, new_page: Any, signed_in: Any
) -> None:
    phone = "+15550007002"
    console_server.send_whatsapp_text(phone, "Can you send the return label?", name="Leo Label")
    page = new_page()
    signed_in(page, console_server.agent)
    open_conversation(page, "Leo Label")
    page.get_by_role("textbox", name="Reply").fill("Here is your label")

    with page.expect_file_chooser() as chooser:
        page.get_by_role("button", name="Attach file").click()
    chooser.value.set_files(files=[{"name": "label.png", "mimeType": "image/png", "buffer": png()}])

    sent = message(page, "Here is your label")
    expect(sent).to_have_attribute("data-status", "sent")
    expect(sent.get_by_role("img")).to_be_visible()
    [body] = [r.json() for r in console_server.sends() if r.json().get("to") == phone.lstrip("+")]
    assert body["type"] == "image"
    assert body["image"]["caption"] == "Here is your label"
    link = body["image"]["link"]
    assert link.startswith(f"{console_server.url}/api/media/")
    fetched = httpx.get(link)  # as the platform would: no credentials
    assert fetched.status_code == 200
    assert fetched.headers["content-type"] == "image/png"
    assert problems(page).errors == []
