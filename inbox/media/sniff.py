"""The type of a file from its first bytes: what a platform or an uploader says it is
is only a hint, and a file is served as what it is."""

from __future__ import annotations

GENERIC = "application/octet-stream"

# Kinds a browser may show inline from our origin; every other type is a download.
INLINE_KINDS = ("image", "audio", "video")
# Images a browser renders as a document with scripts of its own: never inline.
_ACTIVE = frozenset({"image/svg+xml", "text/html", "application/xhtml+xml", "text/xml"})

# (offset, magic bytes, type), tried in order.
_SIGNATURES: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\xff\xd8\xff", "image/jpeg"),
    (0, b"\x89PNG\r\n\x1a\n", "image/png"),
    (0, b"GIF87a", "image/gif"),
    (0, b"GIF89a", "image/gif"),
    (0, b"%PDF-", "application/pdf"),
    (0, b"OggS", "audio/ogg"),
    (0, b"ID3", "audio/mpeg"),
    (0, b"fLaC", "audio/flac"),
    (0, b"#!AMR", "audio/amr"),
    (0, b"\x1aE\xdf\xa3", "video/webm"),
    (0, b"PK\x03\x04", "application/zip"),
)


def sniff(data: bytes) -> str:
    """The content type the bytes show, ``application/octet-stream`` when unknown."""
    for offset, magic, kind in _SIGNATURES:
        if data[offset : offset + len(magic)] == magic:
            return kind
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "audio/wav"
    if data[4:8] == b"ftyp":
        brand = data[8:12]
        if brand in (b"M4A ", b"M4B "):
            return "audio/mp4"
        if brand.startswith(b"3gp"):
            return "video/3gpp"
        return "video/mp4"
    if len(data) >= 2 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0:
        return "audio/mpeg"  # an MPEG audio frame without an ID3 tag
    head = data[:512].lstrip().lower()
    if head.startswith((b"<?xml", b"<svg")) and b"<svg" in head:
        return "image/svg+xml"
    if head.startswith((b"<!doctype html", b"<html", b"<head", b"<body", b"<script")):
        return "text/html"
    if _is_text(data[:4096]):
        return "text/plain"
    return GENERIC


def _is_text(sample: bytes) -> bool:
    if not sample or b"\x00" in sample:
        return False
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut by the sample's end is still text.
        return exc.start >= len(sample) - 3
    return True


def is_inline(content_type: str) -> bool:
    """Whether a browser may show this type in place, from our origin."""
    base = content_type.split(";", 1)[0].strip().lower()
    return base.split("/", 1)[0] in INLINE_KINDS and base not in _ACTIVE


def is_active(content_type: str) -> bool:
    """Whether a browser would run this type as a document of our origin."""
    base = content_type.split(";", 1)[0].strip().lower()
    return base in _ACTIVE or base.endswith(("+xml", "/javascript"))


def kind_of(content_type: str) -> str:
    """The attachment type a platform names it by: image, video, audio or document."""
    base = content_type.split(";", 1)[0].strip().lower()
    top = base.split("/", 1)[0]
    if top in INLINE_KINDS and base not in _ACTIVE:
        return top
    return "document"
