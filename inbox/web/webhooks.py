"""Webhook routes: platforms and web forms push here.

Every delivery is verified on its raw bytes before anything is parsed or
stored, stored in one transaction, and acknowledged only after the commit.
"""

from __future__ import annotations

import functools
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlmodel import col, select
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from connectors.leads import parse_lead
from connectors.phones import to_e164
from connectors.registry import AccountRouting, Adapter, MessageRouting, adapter_for
from connectors.settings import ChannelSettings, SmsSettings
from connectors.signatures import verify_meta, verify_twilio
from connectors.twilio import TWIML_EMPTY_RESPONSE, TWIML_MEDIA_TYPE
from connectors.types import (
    Headers,
    InboundEvent,
    InboundMessage,
    PayloadError,
    SignatureError,
    Unhandled,
    Unreadable,
    WebhookRequest,
)

from ..auth import credentials_from_headers
from ..errors import (
    AuthenticationFailed,
    MalformedRequest,
    NotFound,
    ServiceUnavailable,
    error_response,
)
from ..events import EventType
from ..models import Channel, Contact, Lead, Organization
from ..services.channel_cache import KnownChannel
from ..services.ingest import IngestResult, ingest
from ..services.outbox import transaction
from ..state import AppState
from ..views import lead_data

log = logging.getLogger("inbox.webhooks")


def _state(request: Request) -> AppState:
    return request.app.state.inbox  # type: ignore[no-any-return]


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
        # Straight from the ASGI pairs: one mapping built instead of three.
        headers=Headers(
            (k.decode("latin-1"), v.decode("latin-1")) for k, v in request.scope["headers"]
        ),
        query=dict(request.query_params),
        body=await request.body(),
    )


def _payload_error(exc: PayloadError) -> MalformedRequest:
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


def _vouches(adapter: Adapter, req: WebhookRequest, settings: ChannelSettings) -> bool:
    """Whether a channel's secrets signed the delivery."""
    try:
        adapter.verify(req, settings)
    except SignatureError:
        return False
    return True


# Platforms whose deliveries are signed with the app secret the channels were given
# (Twilio's are signed with the account's auth token). A delivery signed by a secret
# configured here is acknowledged even when it names no channel of ours, since the
# platform retries anything else for days and may end the subscription.
_APP_SIGNED = frozenset({"whatsapp", "instagram"})


async def receive(request: Request, kind: str) -> IngestResult:
    """Verify, parse and store one platform delivery; raise ApiError on any refusal."""
    state = _state(request)
    adapter = adapter_for(kind)
    req = await webhook_request(request, state)
    try:
        keys = adapter.routing_keys(req)
        accounts = adapter.account_keys(req) if isinstance(adapter, AccountRouting) else []
    except PayloadError as exc:
        raise _payload_error(exc) from None
    route = {
        key: known
        for key, known in (await state.channels.lookup(kind, keys)).items()
        if known.channel.is_active
    }
    if not route and accounts:
        # Routed by phone number id where the delivery has one, else by the account.
        for known in await state.channels.active(kind):
            account = getattr(known.settings, "business_account_id", None)
            if account in accounts and known.channel.routing_key is not None:
                route[known.channel.routing_key] = known
    if not route and isinstance(adapter, MessageRouting):
        route = await _route_by_message(state, kind, adapter, req, keys)
    if not route:
        return await _acknowledge_unrouted(state, kind, adapter, req, keys + accounts)
    # Every channel named must vouch for the body before any of it is parsed. One that
    # does not is answered as a delivery naming no channel: signed with a secret of some
    # other channel here (one's own), it must not tell a connected key from an unknown one.
    if not all(_vouches(adapter, req, known.settings) for known in route.values()):
        return await _acknowledge_unrouted(state, kind, adapter, req, keys + accounts)
    try:
        events = adapter.parse(req)
    except PayloadError as exc:
        raise _payload_error(exc) from None
    total = IngestResult()
    # A value without a phone number id belongs to the one channel named, if only one is.
    only = next(iter(route)) if len(route) == 1 else None
    by_channel: dict[str, list[InboundEvent]] = defaultdict(list)
    for event in events:
        if _acknowledged_only(kind, event):
            total.ignored += 1
            continue
        shared = _account_channels(route, event)
        if shared:
            for account_key in shared:
                by_channel[account_key].append(event)
            continue
        key = event.channel_key or only
        if key is None or key not in route:
            # A number of the same platform account that is not connected here.
            log.info(
                "%s delivery: %s for unknown channel %s ignored", kind, type(event).__name__, key
            )
            total.ignored += 1
            continue
        if _sent_by_itself(route[key], event):
            log.info("%s delivery: a message from the channel's own number ignored", kind)
            total.ignored += 1
            continue
        by_channel[key].append(event)
    for key, channel_events in by_channel.items():
        result = await ingest(state.writer, route[key].channel, channel_events)
        if state.profiles is not None:
            # Stored: the senders' names are looked up in the background, not waited for.
            state.profiles.want(route[key].channel, route[key].settings, channel_events)
        total.stored += result.stored
        total.duplicates += result.duplicates
        total.updated += result.updated
        total.ignored += result.ignored
    return total


async def _route_by_message(
    state: AppState, kind: str, adapter: MessageRouting, req: WebhookRequest, keys: list[str]
) -> dict[str, KnownChannel]:
    """A status callback that names no active channel (sent through a Messaging Service,
    from an alphanumeric sender, over WhatsApp), routed to the channel that sent the
    message it reports on, among the channels of the account it names.

    A callback no secret configured here signed is refused before the look-up, so
    forged ones cost no query; the channel found must then vouch for it itself."""
    try:
        sent = adapter.message_keys(req)
        accounts = adapter.message_accounts(req)
    except PayloadError as exc:
        raise _payload_error(exc) from None
    if not sent:
        return {}
    await _check_signed_here(state, kind, req)
    known = await state.channels.sent_through(kind, sent, accounts)
    if known is None:
        return {}
    # Under the name its events carry (a number of ours no longer connected here), or,
    # when they name none, under the channel's own key: the only one in the route.
    key = keys[0] if keys else known.channel.routing_key
    return {key: known} if key is not None else {}


def _sent_by_itself(known: KnownChannel, event: InboundEvent) -> bool:
    """An incoming SMS whose sender is the channel's own number: someone texted the
    number from itself (a test, a forwarding loop). Nobody is on the other end: it is
    not a contact, nor a lead, nor a conversation, and, sent to the channel itself,
    it has no recipient whose conversation an echo of ours could join."""
    settings = known.settings
    return (
        isinstance(event, InboundMessage)
        and isinstance(settings, SmsSettings)
        and event.sender_phone is not None
        and event.sender_phone == to_e164(settings.phone_number)
    )


def _account_channels(route: dict[str, Any], event: InboundEvent) -> list[str]:
    """The routed channels an account-level event concerns: every one of the account it
    names, when it names no channel of its own (a ban reaches all the account's numbers)."""
    account = getattr(event, "account_id", None)
    if event.channel_key is not None or account is None:
        return []
    return [
        key
        for key, known in route.items()
        if getattr(known.settings, "business_account_id", None) == account
    ]


def _acknowledged_only(kind: str, event: InboundEvent) -> bool:
    """Whether the event is only counted: a part the service cannot read (logged, once
    per delivery) or does not act on."""
    if isinstance(event, Unreadable):
        log.warning(
            "%s delivery: unreadable part at %s ignored (%s)", kind, event.where, event.error
        )
        return True
    return isinstance(event, Unhandled)


async def _check_signed_here(state: AppState, kind: str, req: WebhookRequest) -> None:
    """Raise AuthenticationFailed unless a secret of an active channel of ``kind`` signed
    the delivery: an app secret (Meta), an auth token (Twilio)."""
    try:
        if kind in _APP_SIGNED:
            verify_meta(req, await state.channels.app_secrets(kind))
        else:
            verify_twilio(req, await state.channels.auth_tokens(kind))
    except SignatureError as exc:
        raise AuthenticationFailed(f"Signature check failed: {exc}") from None


async def _acknowledge_unrouted(
    state: AppState, kind: str, adapter: Adapter, req: WebhookRequest, named: list[str]
) -> IngestResult:
    """A delivery that names no active channel, or none that signed it: 200 with nothing
    stored when one of the secrets configured here signed it, else 401 -- the same
    answers for a known channel and an unknown one, so a caller cannot learn which ids
    are connected."""
    await _check_signed_here(state, kind, req)
    try:
        events = adapter.parse(req)
    except PayloadError as exc:
        raise _payload_error(exc) from None
    for event in events:
        _acknowledged_only(kind, event)
    log.info(
        "%s delivery signed by no channel it names (%s): %d events acknowledged, none stored",
        kind,
        ", ".join(named) or "none named",
        len(events),
    )
    return IngestResult(ignored=len(events))


def _ack(result: IngestResult) -> Response:
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


async def meta_challenge(request: Request, kind: str) -> Response:
    state = _state(request)
    req = await webhook_request(request, state)
    async with state.db.session() as session:
        rows = await session.exec(
            select(Channel).where(col(Channel.kind) == kind, col(Channel.is_active))
        )
        # Read afresh (a channel made a moment ago through another process is
        # verified at once), decrypted no more than the cache does.
        settings = [state.channels.settings_of(c) for c in rows]
    answer = adapter_for(kind).challenge(req, settings)
    if answer is None:
        return error_response(403, "AUTHORIZATION_FAILED", "Verification token does not match")
    return PlainTextResponse(answer)


async def whatsapp(request: Request) -> Response:
    if request.method == "GET":
        return await meta_challenge(request, "whatsapp")
    return _ack(await receive(request, "whatsapp"))


async def instagram(request: Request) -> Response:
    if request.method == "GET":
        return await meta_challenge(request, "instagram")
    return _ack(await receive(request, "instagram"))


async def twilio(request: Request) -> Response:
    await receive(request, "sms")
    return Response(TWIML_EMPTY_RESPONSE, media_type=TWIML_MEDIA_TYPE)


async def generic_message(request: Request) -> Response:
    """A normalized message from any source, authenticated by an organization API key made
    for ingest: a user's token or a key without the scope could post as a customer."""
    state = _state(request)
    credential = credentials_from_headers(
        request.headers.get("authorization"), request.headers.get("x-api-key")
    )
    principal = await state.auth.authenticate(credential, scope="ingest")
    req = await webhook_request(request, state)
    try:
        events = adapter_for("generic").parse(req)
    except PayloadError as exc:
        raise _payload_error(exc) from None
    channel = await _generic_channel(state, principal.organization_id)
    return _ack(await ingest(state.writer, channel, events))


async def _generic_channel(state: AppState, org_id: int) -> Channel:
    channel = await state.channels.generic(org_id)
    if channel is None:
        async with state.db.session() as session:
            channel = Channel(organization_id=org_id, kind="generic", name="API", settings={})
            session.add(channel)
            await session.commit()
    if not channel.is_active:
        raise NotFound("The organization's generic channel is deactivated")
    return channel


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
    state = _state(request)
    key = request.headers.get("x-form-key") or request.query_params.get("key")
    if not key:
        raise AuthenticationFailed("Missing form key: add ?key=<form key> to the form's action")
    async with state.db.session() as session:
        org = (
            await session.exec(select(Organization).where(col(Organization.lead_form_key) == key))
        ).first()
    if org is None or org.id is None:
        raise AuthenticationFailed("Unknown form key")
    req = await webhook_request(request, state)
    try:
        submission = parse_lead(req)
    except PayloadError as exc:
        raise _payload_error(exc) from None
    async with transaction(state.db, org.id, state.events) as tx:
        match = None
        for column, value in ((Contact.email, submission.email), (Contact.phone, submission.phone)):
            if value and match is None:
                match = (
                    await tx.session.exec(
                        select(Contact.id).where(
                            col(Contact.organization_id) == org.id, col(column) == value
                        )
                    )
                ).first()
        notes = submission.message
        if submission.extra:
            extra = "\n".join(f"{k}: {v}" for k, v in submission.extra.items())
            notes = f"{notes}\n\n{extra}" if notes else extra
        lead = Lead(
            organization_id=org.id,
            contact_id=match,
            name=submission.name,
            email=submission.email,
            phone=submission.phone,
            company=submission.company,
            source="web_form",
            notes=notes,
        )
        tx.session.add(lead)
        await tx.session.flush()
        tx.emit(EventType.LEAD_CREATED, lead_data(lead))
    return Response(
        orjson.dumps({"id": lead.id, "status": "received"}),
        status_code=201,
        media_type="application/json",
        headers=_FORM_CORS,
    )


# The database is down, unreachable or out of connections: the platform must retry.
_UNAVAILABLE = (OSError, OperationalError, InterfaceError, PoolTimeout)


def _stored_or_503(
    handler: Callable[[Request], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    """A delivery that could not be stored is answered 503 (platforms retry those),
    never a 200 and never a bare 500."""

    @functools.wraps(handler)
    async def guarded(request: Request) -> Response:
        try:
            return await handler(request)
        except _UNAVAILABLE as exc:
            log.warning("%s %s: database unavailable (%s)", request.method, request.url.path, exc)
            raise ServiceUnavailable("The service cannot store this now; retry later") from None

    return guarded


routes = [
    Route("/webhooks/whatsapp", _stored_or_503(whatsapp), methods=["GET", "POST"]),
    Route("/webhooks/instagram", _stored_or_503(instagram), methods=["GET", "POST"]),
    Route("/webhooks/twilio/sms", _stored_or_503(twilio), methods=["POST"]),
    Route("/webhooks/twilio/status", _stored_or_503(twilio), methods=["POST"]),
    Route("/webhooks/messages/incoming", _stored_or_503(generic_message), methods=["POST"]),
    Route("/webhooks/leads/incoming", _stored_or_503(lead_form), methods=["POST", "OPTIONS"]),
]


def _doc(summary: str, *, body: str, ok: str, errors: tuple[int, ...], security: list[Any]) -> Any:
    return {
        "summary": summary,
        "tags": ["webhooks"],
        "security": security,
        "requestBody": {
            "required": True,
            "content": {body: {"schema": {"type": "object", "additionalProperties": True}}},
        },
        "responses": {
            "200": {"description": ok},
            **{str(code): {"description": _WEBHOOK_ERRORS[code]} for code in errors},
        },
    }


_WEBHOOK_ERRORS = {
    400: "Malformed body (error envelope)",
    401: "Missing or wrong signature / key (or a delivery naming no active channel that no "
    "configured app secret or Twilio auth token signed); nothing stored",
    403: "Verification token does not match",
    404: "No active channel for the routing key",
    413: "Body over 1 MiB",
    503: "Database unavailable; the platform should retry",
}
# Platform deliveries: signed ones are acknowledged even for an unknown channel.
_SIGNED = (400, 401, 413, 503)
_GENERIC_MESSAGE = _doc(
    "A normalized message from any source: {from, content, platform, name?, external_id?}, "
    'posted with an API key made for ingest ("scopes": ["ingest"])',
    body="application/json",
    ok="Stored",
    errors=(400, 401, 404, 413, 503),
    security=[{"bearerAuth": []}, {"apiKeyHeader": []}],
)
_GENERIC_MESSAGE["responses"]["403"] = {
    "description": "A user's access token, or an API key without the ingest scope; nothing stored"
}
_META_CHALLENGE = {
    "summary": "Meta's verification handshake: answers hub.challenge as text/plain",
    "tags": ["webhooks"],
    "security": [],
    "parameters": [
        {"name": name, "in": "query", "required": True, "schema": {"type": "string"}}
        for name in ("hub.mode", "hub.verify_token", "hub.challenge")
    ],
    "responses": {
        "200": {"description": "The challenge", "content": {"text/plain": {}}},
        "403": {"description": _WEBHOOK_ERRORS[403]},
    },
}

OPENAPI_PATHS: dict[str, Any] = {
    "/webhooks/whatsapp": {
        "get": {**_META_CHALLENGE, "operationId": "whatsapp_challenge"},
        "post": {
            **_doc(
                "WhatsApp Cloud API deliveries, signed with X-Hub-Signature-256",
                body="application/json",
                ok="Stored, or acknowledged (counted as ignored)",
                errors=_SIGNED,
                security=[],
            ),
            "operationId": "whatsapp_webhook",
        },
    },
    "/webhooks/instagram": {
        "get": {**_META_CHALLENGE, "operationId": "instagram_challenge"},
        "post": {
            **_doc(
                "Instagram Messaging deliveries, signed with X-Hub-Signature-256",
                body="application/json",
                ok="Stored, or acknowledged (counted as ignored)",
                errors=_SIGNED,
                security=[],
            ),
            "operationId": "instagram_webhook",
        },
    },
    "/webhooks/twilio/sms": {
        "post": {
            **_doc(
                "Twilio incoming SMS/MMS, signed with X-Twilio-Signature",
                body="application/x-www-form-urlencoded",
                ok="Stored, or acknowledged (empty TwiML)",
                errors=_SIGNED,
                security=[],
            ),
            "operationId": "twilio_sms_webhook",
        },
    },
    "/webhooks/twilio/status": {
        "post": {
            **_doc(
                "Twilio message status callbacks, signed with X-Twilio-Signature",
                body="application/x-www-form-urlencoded",
                ok="Applied, or acknowledged (empty TwiML)",
                errors=_SIGNED,
                security=[],
            ),
            "operationId": "twilio_status_webhook",
        },
    },
    "/webhooks/messages/incoming": {
        "post": {**_GENERIC_MESSAGE, "operationId": "generic_message_webhook"},
    },
    "/webhooks/leads/incoming": {
        "post": {
            **_doc(
                "A web form's lead (JSON or form post), with ?key=<lead form key>",
                body="application/x-www-form-urlencoded",
                ok="Created",
                errors=(400, 401, 413, 503),
                security=[],
            ),
            "operationId": "lead_form_webhook",
            "responses": {
                "201": {"description": "Lead created"},
                **{str(c): {"description": _WEBHOOK_ERRORS[c]} for c in (400, 401, 413, 503)},
            },
        },
        "options": {
            "operationId": "lead_form_preflight",
            "summary": "CORS preflight: any origin may post a lead",
            "tags": ["webhooks"],
            "security": [],
            "responses": {"204": {"description": "Allowed"}},
        },
    },
}
