from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from .common import Input, Output


class MediaPublic(Output):
    id: str
    status: Literal["pending", "stored", "failed"]
    source: Literal["inbound", "upload"]
    content_type: str | None
    size: int | None
    sha256: str | None
    filename: str | None
    created_at: datetime


class MediaLink(Output):
    url: str
    expires_at: datetime


class MediaQuery(Input):
    expires: str | None = Field(default=None, max_length=12, description="Of a signed link.")
    sig: str | None = Field(default=None, max_length=64, description="Of a signed link.")


class UploadQuery(Input):
    filename: str | None = Field(
        default=None, max_length=255, description="The file's name, for a body sent as is."
    )
