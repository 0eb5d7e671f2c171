"""Every payload file, parsed: nothing a person would read as a blank message."""

from __future__ import annotations

import pytest

from connectors.instagram import InstagramAdapter
from connectors.types import InboundMessage, Unreadable
from connectors.whatsapp import WhatsAppAdapter
from tests.connectors.helpers import PAYLOADS, meta_request

ADAPTERS = {"whatsapp": WhatsAppAdapter(), "instagram": InstagramAdapter()}
FILES = [
    (platform, path.name)
    for platform in ADAPTERS
    for path in sorted((PAYLOADS / platform).glob("*.json"))
]


@pytest.mark.parametrize(("platform", "name"), FILES)
def test_no_payload_file_gives_an_empty_message_or_an_unreadable_part(
    platform: str, name: str
) -> None:
    events = ADAPTERS[platform].parse(meta_request((PAYLOADS / platform / name).read_bytes(), None))
    assert events
    for event in events:
        assert not isinstance(event, Unreadable), event
        if isinstance(event, InboundMessage):
            assert event.content or event.attachments, event
