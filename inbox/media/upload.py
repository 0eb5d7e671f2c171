"""An agent's upload: the file of a ``multipart/form-data`` body (field ``file``), or a
body sent as the file itself with its own ``Content-Type``."""

from __future__ import annotations

from dataclasses import dataclass
from email.message import Message as HeaderBlock

from ..errors import MalformedRequest, ValidationFailed


@dataclass(frozen=True)
class Upload:
    data: bytes
    filename: str | None
    declared_type: str | None


def read_upload(content_type: str, body: bytes, filename: str | None) -> Upload:
    """The uploaded file of a request with this ``Content-Type`` and body."""
    header = HeaderBlock()
    header["content-type"] = content_type or "application/octet-stream"
    if header.get_content_type() != "multipart/form-data":
        return Upload(body, clean_filename(filename), header.get_content_type())
    boundary = header.get_param("boundary")
    if not isinstance(boundary, str) or not boundary:
        raise MalformedRequest("multipart/form-data without a boundary")
    delimiter = b"\r\n--" + boundary.encode("latin-1")
    for segment in (b"\r\n" + body).split(delimiter)[1:]:
        if segment.startswith(b"--"):
            break
        head, separator, data = segment.partition(b"\r\n\r\n")
        if not separator:
            raise MalformedRequest("a part of the multipart body has no headers")
        part = HeaderBlock()
        for line in head.decode("utf-8", "replace").split("\r\n"):
            name, colon, value = line.partition(":")
            if colon:
                part[name.strip()] = value.strip()
        if part.get_param("name", header="content-disposition") == "file":
            declared = part.get_content_type() if part["content-type"] else None
            return Upload(data, clean_filename(part.get_filename() or filename), declared)
    raise ValidationFailed(
        "file: the multipart body has no part named file",
        {"fields": [{"field": "file", "message": "required", "type": "missing"}]},
    )


def clean_filename(filename: str | None) -> str | None:
    """A file name as shown and offered for saving: no folders, no control characters."""
    if not filename:
        return None
    name = filename.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if c.isprintable() and c not in '"').strip()
    return name[:255] or None
