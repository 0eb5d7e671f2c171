"""Webhook routes: platforms and web forms push here.

Every delivery is verified on its raw bytes before anything is parsed or
stored, stored in one transaction, and acknowledged only after the commit.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from connectors.phones import to_e164
from connectors.registry import AccountRouting, Adapter, MessageRouting, adapter_for
from connectors.settings import ChannelSettings, SmsSettings
from connectors.signatures import verify_meta, verify_twilio
from connectors.twilio import TWIML_EMPTY_RESPONSE, TWIML_MEDIA_TYPE
from connectors.types import (
    InboundEvent,
    InboundMessage,
    PayloadError,
    SignatureError,
    Unhandled,
    Unreadable,
    WebhookRequest,
)

from ..errors import AuthenticationFailed, error_response
from ..ratelimit.middleware import RateLimited, spend_webhook
from ..services.channel_cache import KnownChannel
from ..services.channels import active_settings
from ..services.ingest import IngestResult, ingest
from ..services.webhook_archive import current_delivery, outcome_of
from ..state import AppState
from ..telemetry.context import channel_id, organization_id
from ..telemetry.metrics import webhook_stored
from . import intake
from .webhook_archive import REPLAY_OF
from .webhook_common import (
    WEBHOOK_ERRORS,
    acknowledged,
    app_state,
    payload_error,
    stored_or_503,
    webhook_doc,
    webhook_request,
)

log = logging.getLogger("inbox.webhooks")


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
    state = app_state(request)
    adapter = adapter_for(kind)
    req = await webhook_request(request, state)
    try:
        keys = adapter.routing_keys(req)
        accounts = adapter.account_keys(req) if isinstance(adapter, AccountRouting) else []
    except PayloadError as exc:
        raise payload_error(exc) from None
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
        return await _acknowledge_unrouted(state, kind, adapter, req, keys + accounts, known=False)
    # Every channel named must vouch for the body before any of it is parsed. One that
    # does not is answered as a delivery naming no channel: signed with a secret of some
    # other channel here (one's own), it must not tell a connected key from an unknown one.
    if not all(_vouches(adapter, req, known.settings) for known in route.values()):
        return await _acknowledge_unrouted(state, kind, adapter, req, keys + accounts, known=True)
    await _within_cap(request, route)
    try:
        events = adapter.parse(req)
    except PayloadError as exc:
        raise payload_error(exc) from None
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
    # Recorded with the data when one channel's transaction holds all of it.
    delivery = current_delivery()
    one = delivery if len(by_channel) == 1 else None
    for key, channel_events in by_channel.items():
        organization_id.set(route[key].channel.organization_id)
        channel_id.set(route[key].channel.id)
        result = await ingest(state.group_commit, route[key].channel, channel_events, archive=one)
        if state.profiles is not None:
            # Stored: the senders' names are looked up in the background, not waited for.
            state.profiles.want(route[key].channel, route[key].settings, channel_events)
        if state.template_resync is not None:
            # A template named that was never synced: the list is read after the answer.
            state.template_resync.want(route[key].channel, channel_events)
        if result.stored and state.media_fetcher is not None:
            state.media_fetcher.wake()  # attachments, if any, are fetched after the answer
        total.stored += result.stored
        total.duplicates += result.duplicates
        total.updated += result.updated
        total.ignored += result.ignored
    webhook_stored(kind, total)
    if delivery is not None:
        delivery.outcome = outcome_of(total)
        if one is None and by_channel:
            delivery.found(next(iter(route.values())).channel.organization_id)
    return total


async def _within_cap(request: Request, route: dict[str, KnownChannel]) -> None:
    """RateLimited (429) when a channel named is past its ``webhook`` cap, before
    anything is stored; counted only once its secret vouched for the delivery, so that
    forged ones spend nothing. A replay is the operator's, and is not counted."""
    if REPLAY_OF in request.scope:
        return
    for known in {k.channel.id: k for k in route.values()}.values():
        assert known.channel.id is not None
        try:
            await spend_webhook(request, known.channel.id)
        except RateLimited:
            delivery = current_delivery()
            if delivery is not None:
                delivery.found(known.channel.organization_id, known.channel.id)
            raise


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
        raise payload_error(exc) from None
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
    state: AppState,
    kind: str,
    adapter: Adapter,
    req: WebhookRequest,
    named: list[str],
    *,
    known: bool,
) -> IngestResult:
    """A delivery that names no active channel, or none that signed it: 200 with nothing
    stored when one of the secrets configured here signed it, else 401 -- the same
    answers for a known channel and an unknown one, so a caller cannot learn which ids
    are connected.

    Archived as for an unknown channel, refused or not, unless a channel it names
    failed to vouch for it: that one is a bad signature, never replayed."""
    delivery = current_delivery()
    if delivery is not None and not known:
        delivery.outcome = "unknown_channel"
    await _check_signed_here(state, kind, req)
    try:
        events = adapter.parse(req)
    except PayloadError as exc:
        raise payload_error(exc) from None
    for event in events:
        _acknowledged_only(kind, event)
    log.info(
        "%s delivery signed by no channel it names (%s): %d events acknowledged, none stored",
        kind,
        ", ".join(named) or "none named",
        len(events),
        extra={"kind": kind},
    )
    result = IngestResult(ignored=len(events))
    webhook_stored(kind, result, unrouted=True)
    if delivery is not None:
        delivery.outcome = "unknown_channel"
    return result


async def meta_challenge(request: Request, kind: str) -> Response:
    state = app_state(request)
    req = await webhook_request(request, state)
    settings = await active_settings(state.db, kind, state.channels.settings_of)
    answer = adapter_for(kind).challenge(req, settings)
    if answer is None:
        return error_response(403, "AUTHORIZATION_FAILED", "Verification token does not match")
    return PlainTextResponse(answer)


async def whatsapp(request: Request) -> Response:
    if request.method == "GET":
        return await meta_challenge(request, "whatsapp")
    return acknowledged(await receive(request, "whatsapp"))


async def instagram(request: Request) -> Response:
    if request.method == "GET":
        return await meta_challenge(request, "instagram")
    return acknowledged(await receive(request, "instagram"))


async def twilio(request: Request) -> Response:
    await receive(request, "sms")
    return Response(TWIML_EMPTY_RESPONSE, media_type=TWIML_MEDIA_TYPE)


# Platform deliveries: signed ones are acknowledged even for an unknown channel.
_SIGNED = (400, 401, 413, 429, 503)


def _meta_challenge(operation_id: str) -> dict[str, Any]:
    return {
        "summary": "Meta's verification handshake: answers hub.challenge as text/plain",
        "tags": ["webhooks"],
        "security": [],
        "parameters": [
            {"name": name, "in": "query", "required": True, "schema": {"type": "string"}}
            for name in ("hub.mode", "hub.verify_token", "hub.challenge")
        ],
        "responses": {
            "200": {"description": "The challenge", "content": {"text/plain": {}}},
            "403": {"description": WEBHOOK_ERRORS[403]},
        },
        "operationId": operation_id,
    }


def _delivery(operation_id: str, summary: str, *, body: str, ok: str) -> dict[str, Any]:
    return webhook_doc(operation_id, summary, body=body, ok=ok, errors=_SIGNED)


_META_OK = "Stored, or acknowledged (counted as ignored)"
_FORM = "application/x-www-form-urlencoded"

routes = [
    Route("/webhooks/whatsapp", stored_or_503(whatsapp, "whatsapp"), methods=["GET", "POST"]),
    Route("/webhooks/instagram", stored_or_503(instagram, "instagram"), methods=["GET", "POST"]),
    Route("/webhooks/twilio/sms", stored_or_503(twilio, "sms"), methods=["POST"]),
    Route("/webhooks/twilio/status", stored_or_503(twilio, "sms"), methods=["POST"]),
    *intake.routes,
]

OPENAPI_PATHS: dict[str, Any] = {
    "/webhooks/whatsapp": {
        "get": _meta_challenge("whatsapp_challenge"),
        "post": _delivery(
            "whatsapp_webhook",
            "WhatsApp Cloud API deliveries, signed with X-Hub-Signature-256",
            body="application/json",
            ok=_META_OK,
        ),
    },
    "/webhooks/instagram": {
        "get": _meta_challenge("instagram_challenge"),
        "post": _delivery(
            "instagram_webhook",
            "Instagram Messaging deliveries, signed with X-Hub-Signature-256",
            body="application/json",
            ok=_META_OK,
        ),
    },
    "/webhooks/twilio/sms": {
        "post": _delivery(
            "twilio_sms_webhook",
            "Twilio incoming SMS/MMS, signed with X-Twilio-Signature",
            body=_FORM,
            ok="Stored, or acknowledged (empty TwiML)",
        ),
    },
    "/webhooks/twilio/status": {
        "post": _delivery(
            "twilio_status_webhook",
            "Twilio message status callbacks, signed with X-Twilio-Signature",
            body=_FORM,
            ok="Applied, or acknowledged (empty TwiML)",
        ),
    },
    **intake.OPENAPI_PATHS,
}
