"""A file's type is what its bytes show, and only some types are shown in place."""

from __future__ import annotations

import pytest

from inbox.media.sniff import is_active, is_inline, kind_of, sniff
from tests.inbox.media.conftest import HTML, PDF, PNG, SVG


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (PNG, "image/png"),
        (b"\xff\xd8\xff\xdb" + bytes(8), "image/jpeg"),
        (b"GIF89a" + bytes(8), "image/gif"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image/webp"),
        (b"\x00\x00\x00\x18ftypmp42" + bytes(8), "video/mp4"),
        (b"OggS" + bytes(8), "audio/ogg"),
        (b"ID3\x04" + bytes(8), "audio/mpeg"),
        (PDF, "application/pdf"),
        (SVG, "image/svg+xml"),
        (b'<?xml version="1.0"?>\n<svg></svg>', "image/svg+xml"),
        (HTML, "text/html"),
        (b"  <html><body>x</body></html>", "text/html"),
        (b"Order 42: two chairs\n", "text/plain"),
        (bytes(range(256)), "application/octet-stream"),
    ],
)
def test_the_bytes_say_what_a_file_is(data, expected):
    assert sniff(data) == expected


def test_images_audio_and_video_are_shown_in_place_and_nothing_that_runs_script():
    assert all(is_inline(t) for t in ("image/png", "audio/ogg; codecs=opus", "video/mp4"))
    assert not any(is_inline(t) for t in ("image/svg+xml", "text/html", "application/pdf"))
    assert all(is_active(t) for t in ("image/svg+xml", "text/html", "application/xhtml+xml"))
    assert (kind_of("image/jpeg"), kind_of("image/svg+xml"), kind_of("application/pdf")) == (
        "image", "document", "document")
