"""Channel kind → adapter: the one place the application asks for a platform."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import httpx

from .generic import GenericAdapter
from .instagram import InstagramAdapter
from .settings import ChannelSettings
from .twilio import TwilioAdapter
from .types import InboundEvent, OutboundMessage, SendResult, WebhookRequest
from .whatsapp import WhatsAppAdapter


class Adapter(Protocol):
    """What every platform offers. Only ``parse`` and ``routing_keys`` read the
    body; they raise nothing but PayloadError, and for Meta platforms only for a body
    that is not a JSON object (a bad part of a delivery is an Unreadable event).
    ``verify`` raises SignatureError, ``send`` raises SendError; settings of another
    kind are a TypeError."""

    kind: str

    def routing_keys(self, req: WebhookRequest) -> list[str]: ...

    def verify(self, req: WebhookRequest, settings: ChannelSettings) -> None: ...

    def challenge(self, req: WebhookRequest, settings: Sequence[ChannelSettings]) -> str | None: ...

    def parse(self, req: WebhookRequest) -> list[InboundEvent]: ...

    async def send(
        self,
        client: httpx.AsyncClient,
        base_url: str,
        settings: ChannelSettings,
        message: OutboundMessage,
    ) -> SendResult: ...


@runtime_checkable
class AccountRouting(Protocol):
    """A platform whose deliveries may name only the account, not the channel's own
    routing key (WhatsApp: the WhatsApp Business Account id, ``business_account_id``)."""

    def account_keys(self, req: WebhookRequest) -> list[str]: ...


@runtime_checkable
class MessageRouting(Protocol):
    """A platform whose status callbacks may name no routing key of ours (Twilio: a
    message sent through a Messaging Service, from an alphanumeric sender or over a
    channel such as WhatsApp). Such a callback is routed by the platform id of the
    message it reports on -- the id the service stored when it sent the message --
    among the channels of the account that sent it. Both raise only PayloadError and
    answer nothing for a delivery that is not a status callback."""

    def message_keys(self, req: WebhookRequest) -> list[str]: ...

    def message_accounts(self, req: WebhookRequest) -> list[str]: ...


ADAPTERS: dict[str, Adapter] = {
    adapter.kind: adapter
    for adapter in (WhatsAppAdapter(), InstagramAdapter(), TwilioAdapter(), GenericAdapter())
}


def adapter_for(kind: str) -> Adapter:
    """The adapter of a channel kind; KeyError for an unknown kind."""
    return ADAPTERS[kind]
