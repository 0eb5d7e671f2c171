"""Where attachment bytes are kept: one small interface, and a local directory.

A store keeps bytes under a key it makes; the ``media`` table says which key holds
which attachment. Another store (an S3-compatible bucket) implements the same three
calls."""

from __future__ import annotations

import asyncio
import os
import secrets
from pathlib import Path
from typing import Protocol


class MediaStore(Protocol):
    async def put(self, data: bytes, *, organization_id: int) -> str:
        """Keep ``data``; answer the key it is kept under."""
        ...

    async def open(self, key: str) -> bytes:
        """The bytes kept under ``key``; FileNotFoundError when there are none."""
        ...

    async def delete(self, key: str) -> None:
        """Forget ``key``; nothing happens when it is already gone."""
        ...


class LocalMediaStore:
    """Files in a directory, one folder per organization, written whole or not at all."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    async def put(self, data: bytes, *, organization_id: int) -> str:
        key = f"{organization_id}/{secrets.token_hex(16)}"
        await asyncio.to_thread(self._write, key, data)
        return key

    async def open(self, key: str) -> bytes:
        return await asyncio.to_thread(self._path(key).read_bytes)

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._path(key).unlink, missing_ok=True)

    def _path(self, key: str) -> Path:
        folder, _, name = key.partition("/")
        # Keys are made here; anything else is refused rather than joined to the root.
        if not (folder.isdigit() and name.isalnum()):
            raise FileNotFoundError(key)
        return self.root / folder / name

    def _write(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".part")
        with open(partial, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        partial.replace(path)
