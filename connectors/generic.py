"""The generic source: any system that posts a normalized JSON message.

Body: ``{"from": "+15550123456", "content": "...", "platform": "whatsapp",
"name"?: "...", "external_id"?: "...", "timestamp"?: ISO-8601}``. There is no
platform signature: the application authenticates the request with an
organization API key before parsing it. Replies go to the channel's ``callback_url``
when it has one, signed as Standard Webhooks specify.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from . import standard_webhooks
from .errors import PayloadError, SendError
from .payload import load_json, validation_error
from .phones import to_e164
from .safe_urls import Unresolvable, UnsafeUrl, read_capped
from .sending import retry_after, transport_errors
from .settings import ChannelSettings, GenericSettings, expect
from .types import InboundEvent, InboundMessage, OutboundMessage, SendResult, WebhookRequest

log = logging.getLogger("connectors.generic")

# What is kept of a callback's answer: enough for an id, never a whole download.
_ANSWER_BYTES = 4096
# A message's external id is at most this long (the column's size).
MAX_EXTERNAL_ID = 255
# The whole exchange, when the client has no timeout of its own: as outgoing webhooks.
DEFAULT_DEADLINE = 10.0
# Platforms whose sender ids are phone numbers.
_PHONE_PLATFORMS = frozenset({"whatsapp", "sms"})


class GenericMessage(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    sender: str = Field(alias="from", min_length=1, max_length=200)
    content: str = Field(min_length=1, max_length=65_536)
    platform: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")
    name: str | None = Field(default=None, max_length=200)
    external_id: str | None = Field(default=None, min_length=1, max_length=255)
    timestamp: datetime | None = None

    @field_validator("platform", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("timestamp")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        try:
            return value.astimezone(UTC)
        except OverflowError:
            raise ValueError("timestamp out of range") from None


class GenericAdapter:
    kind = "generic"

    def routing_keys(self, req: WebhookRequest) -> list[str]:
        # The API key names the organization; there is no channel key in the body.
        return []

    def verify(self, req: WebhookRequest, settings: ChannelSettings) -> None:
        # Authenticated by the application's API key check, not by a signature.
        return None

    def challenge(self, req: WebhookRequest, settings: Sequence[ChannelSettings]) -> str | None:
        return None

    def parse(self, req: WebhookRequest) -> list[InboundEvent]:
        return [parse_message(req.body)]

    async def send(
        self,
        client: httpx.AsyncClient,
        base_url: str,
        settings: ChannelSettings,
        message: OutboundMessage,
    ) -> SendResult:
        """POST the reply to the channel's ``callback_url``, signed; a 2xx is ``sent``.

        ``client`` is the one for customers' URLs (it refuses private addresses)."""
        generic = expect(GenericSettings, settings)
        if not generic.callback_url or generic.callback_secret is None:
            raise SendError(
                "a generic channel without a callback_url has nowhere to send replies",
                retryable=False,
                code="unsupported",
            )
        return await send_callback(
            client, generic.callback_url, generic.callback_secret.get_secret_value(), message
        )


def parse_message(body: bytes) -> InboundMessage:
    data = load_json(body)
    if not isinstance(data, dict):
        raise PayloadError("expected a JSON object", "body")
    try:
        message = GenericMessage.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc) from None
    is_phone = message.sender.startswith("+") or message.platform in _PHONE_PLATFORMS
    return InboundMessage(
        platform=message.platform,
        channel_key=None,
        sender_id=message.sender,
        external_id=message.external_id,
        timestamp=message.timestamp or datetime.now(UTC),
        content=message.content,
        content_type="text",
        sender_name=message.name or None,
        sender_phone=to_e164(message.sender) if is_phone else None,
    )


async def send_callback(
    client: httpx.AsyncClient, url: str, secret: str, message: OutboundMessage
) -> SendResult:
    """POST the reply to ``url``. Connecting, sending and reading the answer share one
    deadline, the client's own timeout: a receiver that drips its answer is as late as
    one that never answers."""
    body = json.dumps(
        {
            "type": "message.reply",
            "message_id": message.message_id,
            "conversation_id": message.conversation_id,
            "to": message.to,
            "content": message.text,
            "attachments": message.attachments,
        },
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode()
    # The same on every retry of one reply, so the receiver can drop a repeat.
    msg_id = f"msg_reply_{message.message_id}"
    headers = standard_webhooks.headers([secret], msg_id, body)
    headers["content-type"] = "application/json"
    deadline = total_deadline(client)
    try:
        with transport_errors(url, SendError):
            async with (
                asyncio.timeout(deadline),
                client.stream("POST", url, content=body, headers=headers) as response,
            ):
                answer = await read_capped(response, _ANSWER_BYTES)
    except TimeoutError:
        raise SendError(
            f"the callback did not answer within {deadline:g} s", retryable=True, code="timeout"
        ) from None
    except Unresolvable as exc:
        raise SendError(str(exc), retryable=True, code="connect_error") from None
    except UnsafeUrl as exc:
        raise SendError(str(exc), retryable=False, code="unsafe_url") from None
    status = response.status_code
    if 200 <= status < 300:
        return SendResult(external_id=answered_id(answer, url) or msg_id)
    raise SendError(
        f"the callback answered HTTP {status}",
        # Gone: the receiver says it will never take one again.
        retryable=status != 410,
        code=f"http_{status}",
        retry_after=retry_after(response.headers.get("retry-after")),
        status_code=status,
    )


def total_deadline(client: httpx.AsyncClient) -> float:
    """The longest of the client's timeouts, for the whole exchange."""
    timeout = client.timeout
    given = [t for t in (timeout.connect, timeout.read, timeout.write, timeout.pool) if t]
    return max(given, default=DEFAULT_DEADLINE)


def answered_id(answer: bytes, url: str) -> str | None:
    """The ``id`` a callback's JSON answer gave the reply, if it is one the message can
    keep (a string of 1 to 255 characters); None, with a warning, for any other."""
    try:
        given = json.loads(answer)
    except ValueError:
        return None
    found = given.get("id") if isinstance(given, dict) else None
    if found is None:
        return None
    if isinstance(found, str) and 1 <= len(found) <= MAX_EXTERNAL_ID:
        return found
    log.warning(
        "the callback %s answered an id that is not a string of 1 to %d characters (%s); "
        "the reply keeps its own id instead",
        redacted(url),
        MAX_EXTERNAL_ID,
        type(found).__name__ if not isinstance(found, str) else f"{len(found)} characters",
    )
    return None


def redacted(url: str) -> str:
    """``url`` without its query: a customer's URL may carry a token there."""
    return url.split("?", 1)[0]
