"""Attachments' bytes: uploads, and the files themselves, to their organization only."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from starlette.responses import Response

from ..errors import NotFound, PayloadTooLarge, ValidationFailed
from ..media import MediaService
from ..media.inbound import new_media_id
from ..media.sniff import GENERIC, is_active, is_inline, sniff
from ..media.upload import read_upload
from ..models import Media
from ..schemas.media import MediaLink, MediaPublic, MediaQuery, UploadQuery
from ..web.endpoint import Context, Endpoints, authenticate, json_response

api = Endpoints("media")

# Nothing a stored file holds runs here, even should a browser be told to show it.
_MEDIA_POLICY = "default-src 'none'; img-src 'self'; media-src 'self'; sandbox"


def _media(ctx: Context[Any, None]) -> MediaService:
    service = ctx.state.media
    assert service is not None, "the app sets up media at start"
    return service


@api.post(
    "/api/media",
    summary="Upload a file to attach to a reply",
    response=MediaPublic,
    status=201,
    query=UploadQuery,
    errors=(413,),
)
async def upload_media(ctx: Context[UploadQuery, None]) -> Response:
    """The body is `multipart/form-data` with the file in the field `file`, or the
    file itself with its `Content-Type` (and `?filename=`). Answers 413 past
    `INBOX_MEDIA_MAX_BYTES`, 422 for an empty file or one whose type its bytes do not
    show. Attach it with `{"attachments": [{"media_id": id}]}` on a reply."""
    service = _media(ctx)
    body = await ctx.request.body()
    upload = read_upload(ctx.request.headers.get("content-type", ""), body, ctx.query.filename)
    if not upload.data:
        raise _invalid("file", "the file is empty")
    if len(upload.data) > service.max_bytes:
        raise PayloadTooLarge(
            f"The file is {len(upload.data)} bytes, over the limit of {service.max_bytes}"
        )
    content_type = sniff(upload.data)
    if content_type == GENERIC or is_active(content_type):
        raise _invalid(
            "file",
            "its bytes are of no type that can be sent (images, audio, video, PDF, plain text)",
        )
    key = await service.store.put(upload.data, organization_id=ctx.org_id)
    media = Media(
        id=new_media_id(),
        organization_id=ctx.org_id,
        source="upload",
        content_type=content_type,
        size=len(upload.data),
        sha256=hashlib.sha256(upload.data).hexdigest(),
        storage_key=key,
        filename=upload.filename,
        status="stored",
    )
    async with ctx.state.db.session(write=True) as session:
        session.add(media)
        await session.commit()
        await session.refresh(media)
    return json_response(MediaPublic.model_validate(media), 201)


@api.get(
    "/api/media/{media_id:str}",
    summary="The bytes of an attachment",
    role=None,
    query=MediaQuery,
    errors=(401, 404),
)
async def get_media(ctx: Context[MediaQuery, None]) -> Response:
    """To the attachment's organization only (any other: 404), with credentials or
    with the `expires` and `sig` of a link from `/api/media/{id}/link`. Images, audio
    and video are served inline; anything else (SVG and HTML included) as a download."""
    service = _media(ctx)
    media_id = ctx.path["media_id"]
    query = ctx.query
    if query.sig is not None or query.expires is not None:
        if not service.links.valid(media_id, query.expires or "", query.sig or ""):
            raise NotFound("No such media, or the link has expired")
        org_id = None
    else:
        principal = await authenticate(ctx.request, ctx.state)
        org_id = principal.organization_id
    async with ctx.state.db.session() as session:
        media = await session.get(Media, media_id)
    if media is None or (org_id is not None and media.organization_id != org_id):
        raise NotFound(f"Media {media_id} not found")
    if media.status != "stored" or media.storage_key is None:
        raise NotFound(f"Media {media_id} is not stored ({media.status})")
    try:
        data = await service.store.open(media.storage_key)
    except FileNotFoundError:
        raise NotFound(f"Media {media_id} is not stored") from None
    content_type = media.content_type or GENERIC
    inline = is_inline(content_type)
    name = media.filename or media.id
    headers = {
        "Content-Disposition": f"{'inline' if inline else 'attachment'}; "
        f"filename*=UTF-8''{quote(name)}",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": _MEDIA_POLICY,
        "Cache-Control": "private, max-age=3600",
    }
    served = GENERIC if is_active(content_type) else content_type
    return Response(data, media_type=served, headers=headers)


@api.get(
    "/api/media/{media_id:str}/link",
    summary="A short-lived link to an attachment, for an <img> tag",
    response=MediaLink,
    role="viewer",
)
async def media_link(ctx: Context[None, None]) -> MediaLink:
    """The link serves the file without credentials for an hour."""
    service = _media(ctx)
    media_id = ctx.path["media_id"]
    async with ctx.state.db.session() as session:
        media = await session.get(Media, media_id)
    if media is None or media.organization_id != ctx.org_id:
        raise NotFound(f"Media {media_id} not found")
    path, expires = service.links.console(media_id)
    return MediaLink(url=path, expires_at=datetime.fromtimestamp(expires, UTC))


def _invalid(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(
        f"{field}: {message}",
        {"fields": [{"field": field, "message": message, "type": "value_error"}]},
    )


def describe_files(document: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI document with what these routes take and give that is not JSON: a
    file uploaded, a file served."""
    paths = document["paths"]
    binary = {"schema": {"type": "string", "format": "binary"}}
    upload = paths["/api/media"]["post"]
    upload["requestBody"] = {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                }
            },
            "*/*": binary,
        },
    }
    for status in ("400", "415"):
        upload["responses"].setdefault(status, document_error(status))
    served = paths["/api/media/{media_id}"]["get"]
    served["responses"]["200"] = {"description": "The file", "content": {"*/*": binary}}
    served["security"] = [{}, {"bearerAuth": []}, {"apiKeyHeader": []}]
    return document


def document_error(status: str) -> dict[str, Any]:
    return {
        "description": {"400": "Malformed request", "415": "Unsupported media type"}[status],
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}},
    }
