"""The error envelope: ``{"error": {"code", "message", "details"}}`` with its status."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route

from .telemetry.context import request_id

log = logging.getLogger("inbox.errors")


class ApiError(Exception):
    status = 400
    code = "BAD_REQUEST"

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


class MalformedRequest(ApiError):
    status, code = 400, "MALFORMED_REQUEST"


class AuthenticationFailed(ApiError):
    status, code = 401, "AUTHENTICATION_FAILED"


class AuthorizationFailed(ApiError):
    status, code = 403, "AUTHORIZATION_FAILED"


class NotFound(ApiError):
    status, code = 404, "RESOURCE_NOT_FOUND"


class MethodNotAllowed(ApiError):
    status, code = 405, "METHOD_NOT_ALLOWED"


class Conflict(ApiError):
    status, code = 409, "CONFLICT"


class PayloadTooLarge(ApiError):
    status, code = 413, "PAYLOAD_TOO_LARGE"


class UnsupportedMediaType(ApiError):
    status, code = 415, "UNSUPPORTED_MEDIA_TYPE"


class ValidationFailed(ApiError):
    status, code = 422, "VALIDATION_ERROR"


class ChannelCannotReply(ApiError):
    status, code = 422, "CHANNEL_CANNOT_REPLY"


class IdempotencyKeyReused(ApiError):
    status, code = 422, "IDEMPOTENCY_KEY_REUSED"


class ServiceUnavailable(ApiError):
    status, code = 503, "SERVICE_UNAVAILABLE"


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> bytes:
    return orjson.dumps({"error": {"code": code, "message": message, "details": details or {}}})


def error_response(
    status: int, code: str, message: str, details: dict[str, Any] | None = None
) -> Response:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return Response(
        error_body(code, message, details),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def validation_failed(exc: ValidationError, *, prefix: tuple[str, ...] = ()) -> ValidationFailed:
    """Pydantic's errors as field details a form can show next to each field."""
    fields = []
    for err in exc.errors(include_url=False, include_context=False, include_input=False):
        loc = [*prefix, *(str(p) for p in err["loc"])]
        fields.append({"field": ".".join(loc), "message": err["msg"], "type": err["type"]})
    first = fields[0] if fields else {"field": "", "message": "invalid"}
    where = f"{first['field']}: " if first["field"] else ""
    return ValidationFailed(f"{where}{first['message']}", {"fields": fields})


def field_error(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(
        f"{field}: {message}",
        {"fields": [{"field": field, "message": message, "type": "value_error"}]},
    )


async def api_error_handler(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.message, exc.details)


_HTTP_CODES = {
    400: "MALFORMED_REQUEST",
    401: "AUTHENTICATION_FAILED",
    403: "AUTHORIZATION_FAILED",
    404: "RESOURCE_NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    503: "SERVICE_UNAVAILABLE",
}


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves on the request's path."""
    methods: set[str] = set()
    for route in request.app.routes:
        if (
            isinstance(route, Route)
            and route.methods
            and route.matches(request.scope)[0] is not Match.NONE
        ):
            methods |= route.methods
    return sorted(methods)


async def http_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "HTTP_ERROR")
    message = exc.detail if exc.status_code != 404 else "No such resource"
    response = error_response(exc.status_code, code, str(message))
    if exc.headers:
        response.headers.update(exc.headers)
    if exc.status_code == 405:
        # Starlette names only the first route on the path; each operation is its own
        # route, so a path's methods are gathered from all of them.
        response.headers["Allow"] = ", ".join(allowed_methods(request))
    return response


async def unhandled_error_handler(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    response = error_response(500, "INTERNAL_ERROR", "Internal server error")
    # Answered outside the middleware that stamps every other answer with the id.
    rid = request_id.get()
    if rid is not None:
        response.headers["X-Request-Id"] = rid
    return response
