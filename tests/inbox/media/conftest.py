"""A service of its own for the media tests, one per backend: its own database (so no
other server's workers fetch or send its attachments), a public URL for the links the
platforms fetch, and a small size limit."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from servers import create_database, drop_database
from support import BackgroundLoop

from inbox import migrate
from inbox.settings import async_database_url
from tests.connectors.fake_platform import FakePlatform
from tests.inbox.conftest import Service, Tenant
from tests.inbox.live.wsclient import extra_service
from tests.inbox.platforms import Connected, unique_digits, whatsapp_body

PUBLIC_URL = "https://inbox.example.com"
MAX_BYTES = 64 * 1024

# The smallest files of each kind the service tells apart by their bytes.
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(64)
PDF = b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n"
SVG = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
HTML = b"<!DOCTYPE html><html><body><script>alert(1)</script></body></html>"


@pytest.fixture(scope="session")
def media_service(
    request: pytest.FixtureRequest, database_url: str, loop: BackgroundLoop, platform: FakePlatform
) -> Iterator[Service]:
    if database_url.startswith("sqlite"):
        url = async_database_url(f"sqlite:///{Path(tempfile.mkdtemp()) / 'media.db'}")
        name = None
    else:
        server_url = request.getfixturevalue("postgres_server_url")
        url, name = create_database(server_url)
        url = async_database_url(url)
    migrate.upgrade(url)
    with extra_service(
        url,
        loop,
        public_url=PUBLIC_URL,
        media_max_bytes=MAX_BYTES,
        media_fetch=True,
        graph_api_url=platform.base_url,
        twilio_api_url=platform.base_url,
    ) as service:
        yield service
    if name is not None:
        drop_database(request.getfixturevalue("postgres_server_url"), name)


@pytest.fixture()
def media_tenant(media_service: Service) -> Tenant:
    return media_service.new_tenant()


@pytest.fixture()
def other_media_tenant(media_service: Service) -> Tenant:
    return media_service.new_tenant()


def whatsapp_image(channel: Connected, media_id: str, *, mime: str = "image/png") -> bytes:
    """A customer's image on WhatsApp, with ids of its own."""
    body = json.loads(whatsapp_body(channel, "image.json"))
    message = body["entry"][0]["changes"][0]["value"]["messages"][0]
    message["id"] = f"wamid.MEDIA{unique_digits(12)}"
    message["image"] = {"id": media_id, "mime_type": mime, "caption": "the parcel"}
    return json.dumps(body).encode()


def new_media_id() -> str:
    return unique_digits(16)


def first_attachment(tenant: Tenant) -> dict[str, Any]:
    """The first attachment of the tenant's latest conversation, as the API shows it."""
    [conversation] = tenant.api.get("/api/conversations").json()["data"][:1]
    messages = tenant.api.get(f"/api/conversations/{conversation['id']}/messages").json()
    attachment: dict[str, Any] = messages["data"][-1]["attachments"][0]
    return attachment
