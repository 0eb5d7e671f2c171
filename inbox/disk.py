"""The disk under a SQLite database, for the cases SQLite reports vaguely: a file system
turned read-only under a running process (ext4 does so after an I/O error, without
changing its mount flags) reaches us as "disk I/O error", which says nothing an
operator can act on. Asked only once a write has failed."""

from __future__ import annotations

import asyncio
import errno
import os
from pathlib import Path

_WHY = {
    errno.EROFS: "is read-only",
    errno.ENOSPC: "is full",
    errno.EDQUOT: "is over its quota",
    errno.EIO: "fails with I/O errors",
    errno.EACCES: "is not writable by this process",
    errno.EPERM: "is not writable by this process",
}


def unwritable(database_file: Path | None) -> str | None:
    """Why nothing can be written beside ``database_file`` now, found by trying to."""
    if database_file is None:
        return None
    probe = database_file.parent / f".{database_file.name}-probe-{os.getpid()}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, b"\0")
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as exc:
        if exc.errno in _WHY:
            return f"the file system holding {database_file} {_WHY[exc.errno]}"
    return None


PROBE_SECONDS = 1.0


async def why_unwritable(database_file: Path | None) -> str | None:
    """`unwritable`, off the loop and bounded: a disk in trouble may also hang."""
    if database_file is None:
        return None
    try:
        return await asyncio.wait_for(
            asyncio.to_thread(unwritable, database_file), PROBE_SECONDS
        )
    except TimeoutError:
        return f"the file system holding {database_file} does not answer"
