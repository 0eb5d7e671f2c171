"""Attachments' bytes: fetched from the platforms, uploaded by agents, kept in a store
and served to their organization."""

from __future__ import annotations

from dataclasses import dataclass

from .links import MediaLinks
from .store import LocalMediaStore, MediaStore

__all__ = ["LocalMediaStore", "MediaLinks", "MediaService", "MediaStore"]


@dataclass
class MediaService:
    """What the routes need of media: where the bytes are, how links are signed, the
    size limit."""

    store: MediaStore
    links: MediaLinks
    max_bytes: int
