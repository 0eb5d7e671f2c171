"""Webhooks of our own making: normalized messages posted with an ingest key, and web
forms' leads posted with an organization's publishable form key."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from connectors.leads import parse_lead
from connectors.registry import adapter_for
from connectors.types import PayloadError

from ..auth import credentials_from_headers
from ..errors import AuthenticationFailed
from ..ratelimit.middleware import spend_webhook
from ..services.channels import generic_channel
from ..services.ingest import ingest
from ..services.leads import add_form_lead, form_organization
from ..services.outbox import unit_of_work
from ..services.webhook_archive import current_delivery, outcome_of
from ..telemetry.context import channel_id, organization_id
from ..telemetry.metrics import webhook_received, webhook_stored
from .webhook_archive import REPLAY_FOR
from .webhook_common import (
    acknowledged,
    app_state,
    errors_doc,
    payload_error,
    stored_or_503,
    webhook_doc,
    webhook_request,
)


async def generic_message(request: Request) -> Response:
    """A normalized message from any source, authenticated by an organization API key made
    for ingest: a user's token or a key without the scope could post as a customer."""
    state = app_state(request)
    replayed_for = request.scope.get(REPLAY_FOR)
    if replayed_for is None:
        credential = credentials_from_headers(
            request.headers.get("authorization"), request.headers.get("x-api-key")
        )
        org_id = (await state.auth.authenticate(credential, scope="ingest")).organization_id
    else:
        org_id = replayed_for  # its key was checked when it arrived; it is not kept
    delivery = current_delivery()
    if delivery is not None:
        delivery.found(org_id)
    req = await webhook_request(request, state)
    try:
        events = adapter_for("generic").parse(req)
    except PayloadError as exc:
        raise payload_error(exc) from None
    channel = await generic_channel(state.db, state.channels, org_id)
    if replayed_for is None and channel.id is not None:
        # The channel's webhook cap, when one is set: 429 before anything is stored.
        await spend_webhook(request, channel.id)
    organization_id.set(org_id)
    channel_id.set(channel.id)
    result = await ingest(state.group_commit, channel, events, archive=delivery)
    webhook_stored("generic", result)
    if delivery is not None:
        delivery.outcome = outcome_of(result)
    return acknowledged(result)


_FORM_CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST, OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type, X-Form-Key",
    "Access-Control-Max-Age": "600",
}


async def lead_form(request: Request) -> Response:
    """A web form's lead, authenticated by the organization's publishable form key."""
    if request.method == "OPTIONS":
        return Response(status_code=204, headers=_FORM_CORS)
    state = app_state(request)
    org_id = request.scope.get(REPLAY_FOR)
    if org_id is None:
        key = request.headers.get("x-form-key") or request.query_params.get("key")
        if not key:
            raise AuthenticationFailed(
                "Missing form key: add ?key=<form key> to the form's action"
            )
        org_id = await form_organization(state.db, key)
        if org_id is None:
            raise AuthenticationFailed("Unknown form key")
    # else: a replay; its key was checked when it arrived and is not kept
    delivery = current_delivery()
    if delivery is not None:
        delivery.found(org_id)
    req = await webhook_request(request, state)
    try:
        submission = parse_lead(req)
    except PayloadError as exc:
        raise payload_error(exc) from None
    async with unit_of_work(state.db, org_id, state.events) as tx:
        lead = await add_form_lead(tx, submission)
    webhook_received("lead_form", "stored")
    return Response(
        orjson.dumps({"id": lead.id, "status": "received"}),
        status_code=201,
        media_type="application/json",
        headers=_FORM_CORS,
    )


routes = [
    Route(
        "/webhooks/messages/incoming", stored_or_503(generic_message, "generic"), methods=["POST"]
    ),
    Route(
        "/webhooks/leads/incoming",
        stored_or_503(lead_form, "lead_form"),
        methods=["POST", "OPTIONS"],
    ),
]

_GENERIC_MESSAGE = webhook_doc(
    "generic_message_webhook",
    "A normalized message from any source: {from, content, platform, name?, external_id?}, "
    'posted with an API key made for ingest ("scopes": ["ingest"])',
    body="application/json",
    ok="Stored",
    errors=(400, 401, 404, 413, 429, 503),
    security=[{"bearerAuth": []}, {"apiKeyHeader": []}],
)
_GENERIC_MESSAGE["responses"]["403"] = {
    "description": "A user's access token, or an API key without the ingest scope; nothing stored"
}
_LEAD_FORM = webhook_doc(
    "lead_form_webhook",
    "A web form's lead (JSON or form post), with ?key=<lead form key>",
    body="application/x-www-form-urlencoded",
    ok="Created",
    errors=(),
)
_LEAD_FORM["responses"] = {
    "201": {"description": "Lead created"},
    **errors_doc((400, 401, 413, 429, 503)),
}

OPENAPI_PATHS: dict[str, Any] = {
    "/webhooks/messages/incoming": {"post": _GENERIC_MESSAGE},
    "/webhooks/leads/incoming": {
        "post": _LEAD_FORM,
        "options": {
            "operationId": "lead_form_preflight",
            "summary": "CORS preflight: any origin may post a lead",
            "tags": ["webhooks"],
            "security": [],
            "responses": {"204": {"description": "Allowed"}},
        },
    },
}
