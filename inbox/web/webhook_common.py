"""What every webhook route shares: the request as connectors read it, refusals in the
error envelope, 503 when nothing can be stored, the acknowledgement, and their docs."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.requests import Request
from starlette.responses import Response

from connectors.types import Headers, PayloadError, WebhookRequest

from ..disk import why_unwritable
from ..errors import ApiError, MalformedRequest, ServiceUnavailable
from ..services.ingest import IngestResult
from ..state import AppState
from ..telemetry.metrics import webhook_received
from .unavailable import from_database
from .webhook_archive import answered, arrived

log = logging.getLogger("inbox.webhooks")


def app_state(request: Request) -> AppState:
    return request.app.state.inbox  # type: ignore[no-any-return]  # Starlette's state is untyped


def public_url(request: Request, settings_url: str | None) -> str:
    """The URL the platform called: behind a proxy, rebuilt from INBOX_PUBLIC_URL."""
    if settings_url is None:
        return str(request.url)
    query = request.url.query
    return f"{settings_url}{request.url.path}" + (f"?{query}" if query else "")


async def webhook_request(request: Request, state: AppState) -> WebhookRequest:
    return WebhookRequest(
        method=request.method,
        url=public_url(request, state.settings.public_url),
        # Straight from the ASGI pairs, without Starlette's own header mapping.
        headers=Headers(
            (k.decode("latin-1"), v.decode("latin-1")) for k, v in request.scope["headers"]
        ),
        query=dict(request.query_params),
        body=await request.body(),
    )


def payload_error(exc: PayloadError) -> MalformedRequest:
    details: dict[str, object] = {}
    if exc.where:
        details["where"] = exc.where
    if exc.details:
        # The same shape as every other validation error, so one form handler reads both.
        details["fields"] = [
            {"field": field, "message": message, "type": "value_error"}
            for field, message in exc.details.items()
        ]
    return MalformedRequest(str(exc), details)


def acknowledged(result: IngestResult) -> Response:
    return Response(
        orjson.dumps(
            {
                "stored": result.stored,
                "duplicates": result.duplicates,
                "updated": result.updated,
                "ignored": result.ignored,
            }
        ),
        media_type="application/json",
    )


# The database is down, unreachable or out of connections, or another part the delivery
# needs did not answer: nothing is stored, and the platform must retry.
_UNAVAILABLE = (OSError, OperationalError, InterfaceError, PoolTimeout)


# Why a refused delivery was refused, by its answer's status (any other 4xx: malformed).
_REFUSALS = {
    401: "bad_signature",
    403: "bad_signature",
    404: "unknown_channel",
    # Past the channel's webhook cap: nothing stored, the platform retries.
    429: "rate_limited",
    500: "failed",
    503: "failed",
}


def _refused(request: Request, kind: str, outcome: str) -> None:
    # Meta's GET challenge and the lead form's CORS preflight are not deliveries.
    if request.method == "POST":
        webhook_received(kind, outcome)


async def _why_not_stored(state: AppState, exc: BaseException) -> str:
    if not from_database(exc):
        return "not stored"
    disk = await why_unwritable(state.db.sqlite_file)
    return f"database unavailable: {disk}" if disk else "database unavailable"


def stored_or_503(
    handler: Callable[[Request], Awaitable[Response]], kind: str
) -> Callable[[Request], Awaitable[Response]]:
    """A delivery that could not be stored is answered 503 (platforms retry those),
    never a 200 and never a bare 500. A refused delivery is counted here, by why; the
    handler counts those it answers 200."""

    @functools.wraps(handler)
    async def guarded(request: Request) -> Response:
        state = app_state(request)
        delivery = None
        try:
            delivery = await arrived(request, state, kind)
            response = await handler(request)
        except _UNAVAILABLE as exc:
            answered(state, delivery, "failed", 503, str(exc))
            _refused(request, kind, "failed")
            log.warning(
                "%s %s: %s (%r)",
                request.method,
                request.url.path,
                await _why_not_stored(state, exc),
                exc,
                extra={"kind": kind},
            )
            raise ServiceUnavailable("The service cannot store this now; retry later") from None
        except ApiError as exc:
            outcome = _REFUSALS.get(exc.status, "malformed")
            answered(state, delivery, outcome, exc.status, f"{exc.code}: {exc.message}")
            _refused(request, kind, outcome)
            raise
        except Exception as exc:
            answered(state, delivery, "failed", 500, repr(exc))
            _refused(request, kind, "failed")
            raise
        answered(state, delivery, None, response.status_code)
        return response

    return guarded


WEBHOOK_ERRORS = {
    400: "Malformed body (error envelope)",
    401: "Missing or wrong signature / key (or a delivery naming no active channel that no "
    "configured app secret or Twilio auth token signed); nothing stored",
    403: "Verification token does not match",
    404: "No active channel for the routing key",
    413: "Body over 1 MiB",
    429: "Past a rate limit: the channel's webhook cap (`webhook=N/minute` in "
    "INBOX_RATE_LIMITS, off by default) or, for the lead form, the per-address `leads` "
    "limit; nothing stored, Retry-After says when to send it again",
    503: "Database unavailable; the platform should retry",
}


def errors_doc(codes: tuple[int, ...]) -> dict[str, Any]:
    return {str(code): {"description": WEBHOOK_ERRORS[code]} for code in codes}


def webhook_doc(
    operation_id: str,
    summary: str,
    *,
    body: str,
    ok: str,
    errors: tuple[int, ...],
    security: list[Any] | None = None,
) -> dict[str, Any]:
    """The OpenAPI operation of a webhook that takes a free-form body."""
    return {
        "summary": summary,
        "tags": ["webhooks"],
        "security": security or [],
        "requestBody": {
            "required": True,
            "content": {body: {"schema": {"type": "object", "additionalProperties": True}}},
        },
        "responses": {"200": {"description": ok}, **errors_doc(errors)},
        "operationId": operation_id,
    }
