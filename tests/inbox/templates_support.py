"""WhatsApp templates as a Business Account lists them, and a channel that has them."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import update
from sqlmodel import col

from inbox.models import Channel, Conversation, utcnow
from inbox.services.channel_secrets import ChannelSecrets
from inbox.services.templates import SyncResult, sync_channel
from tests.connectors.fake_platform import FakePlatform
from tests.inbox.platforms import Connected, rows, unique_digits, whatsapp_channel

ORDER_UPDATE = {
    "id": "1001",
    "name": "order_update",
    "language": "en_US",
    "status": "APPROVED",
    "category": "UTILITY",
    "parameter_format": "POSITIONAL",
    "components": [
        {"type": "HEADER", "format": "TEXT", "text": "Order {{1}}"},
        {"type": "BODY", "text": "Hi {{1}}, your order {{2}} has shipped."},
        {"type": "FOOTER", "text": "Reply STOP to opt out"},
        {
            "type": "BUTTONS",
            "buttons": [
                {"type": "URL", "text": "Track", "url": "https://shop.example/track/{{1}}"},
                {"type": "QUICK_REPLY", "text": "Thanks"},
            ],
        },
    ],
}
WELCOME = {
    "id": "1002",
    "name": "welcome",
    "language": "en_US",
    "status": "APPROVED",
    "category": "MARKETING",
    "parameter_format": "NAMED",
    "components": [{"type": "BODY", "text": "Hello {{first_name}}, welcome to {{shop}}!"}],
}
HELLO = {
    "id": "1003",
    "name": "hello_world",
    "language": "en_US",
    "status": "APPROVED",
    "category": "UTILITY",
    "components": [{"type": "BODY", "text": "Hello World"}],
}
PROMO = {
    "id": "1004",
    "name": "promo",
    "language": "en_US",
    "status": "REJECTED",
    "category": "MARKETING",
    "components": [{"type": "BODY", "text": "50% off today"}],
}
ORDER_UPDATE_ES = {
    **ORDER_UPDATE,
    "id": "1005",
    "language": "es",
    "status": "PENDING",
}
TEMPLATES = [ORDER_UPDATE, WELCOME, HELLO, PROMO, ORDER_UPDATE_ES]


def template_channel(
    tenant: Any, platform: FakePlatform, templates: list[dict[str, Any]] | None = None
) -> tuple[Connected, str]:
    """A WhatsApp channel whose Business Account lists ``templates`` (two a page),
    synced once."""
    account = f"102{unique_digits(12)}"
    channel = whatsapp_channel(tenant, business_account_id=account)
    platform.templates(account, TEMPLATES if templates is None else templates, page_size=2)
    sync(tenant.service, channel)
    return channel, account


def sync(service: Any, channel: Connected) -> SyncResult:
    [row] = rows(service, Channel, col(Channel.id) == channel.id)
    secrets: ChannelSecrets = service.app.state.inbox.secrets

    async def run() -> SyncResult:
        async with httpx.AsyncClient(timeout=5) as http:
            return await sync_channel(
                service.db, secrets, http, service.settings.graph_api_url, row
            )

    return service.run(run())  # type: ignore[no-any-return]


def close_window(service: Any, conversation_id: int) -> None:
    """The customer last wrote 25 hours ago."""

    async def age() -> None:
        async with service.db.session() as session:
            await session.exec(
                update(Conversation)
                .where(col(Conversation.id) == conversation_id)
                .values(last_inbound_at=utcnow() - timedelta(hours=25))
            )
            await session.commit()

    service.run(age())


def order_update(**parameters: Any) -> dict[str, Any]:
    return {
        "template": {
            "name": "order_update",
            "language": "en_US",
            "parameters": {
                "header": ["#1042"],
                "body": ["Sam", "#1042"],
                "buttons": ["1042"],
                **parameters,
            },
        }
    }
