"""`inbox demo --live`: customers of the demo organization keep writing in, as signed
platform webhooks posted to a running service's real routes, so a console moves."""

from __future__ import annotations

import asyncio
import json
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlencode

import httpx
from sqlmodel import col, select

from connectors.signatures import META_HEADER, TWILIO_HEADER, meta_signature, twilio_signature

from ..db import Database
from ..models import Channel, Contact, ContactIdentity, User
from ..services.channel_secrets import ChannelSecrets
from .script import FIRST_LINES, LIVE_LINES, NEWCOMERS
from .seed import DEMO_OWNER

PATHS = {
    "whatsapp": "/webhooks/whatsapp",
    "instagram": "/webhooks/instagram",
    "sms": "/webhooks/twilio/sms",
}


class LiveDemoError(Exception):
    """Why the live demo cannot go on, in one line for the person running it."""


@dataclass(frozen=True)
class DemoChannel:
    kind: str
    # Where the platform says a message went: the phone number id, account id or number.
    key: str
    # What signs its webhooks: the app secret, or Twilio's auth token.
    secret: str
    account_sid: str = ""


@dataclass(frozen=True)
class Customer:
    kind: str
    # How the platform names the sender: a WhatsApp id, an Instagram id, a phone number.
    sender: str
    name: str


async def load_demo(
    db: Database, channel_secrets: ChannelSecrets
) -> tuple[dict[str, DemoChannel], list[Customer]]:
    """The demo organization's sandbox channels, with their secrets, and its customers."""
    async with db.session() as session:
        owner = (await session.exec(select(User).where(User.email == DEMO_OWNER))).first()
        if owner is None:
            raise LiveDemoError("there is no demo organization; run `inbox demo` first")
        org_id = owner.organization_id
        rows = list(
            await session.exec(
                select(Channel).where(
                    col(Channel.organization_id) == org_id,
                    col(Channel.kind).in_(PATHS),
                    col(Channel.is_active).is_(True),
                )
            )
        )
        people = list(
            await session.exec(
                select(ContactIdentity.kind, ContactIdentity.external_id, Contact.name)
                .join(Contact, col(Contact.id) == col(ContactIdentity.contact_id))
                .where(col(ContactIdentity.organization_id) == org_id)
                .order_by(col(ContactIdentity.id))
            )
        )
    channels: dict[str, DemoChannel] = {}
    for row in rows:
        settings = channel_secrets.decrypted(row)
        secret = settings.get("app_secret") or settings.get("auth_token")
        if row.routing_key and secret and row.kind not in channels:
            channels[row.kind] = DemoChannel(
                row.kind, row.routing_key, str(secret), str(settings.get("account_sid", ""))
            )
    if not channels:
        raise LiveDemoError("the demo organization has no active channel to write to")
    customers = [
        Customer(kind, sender, name or "Customer")
        for kind, sender, name in people
        if kind in channels
    ]
    return channels, customers


def signed_request(
    base_url: str, channel: DemoChannel, customer: Customer, text: str
) -> tuple[str, bytes, dict[str, str]]:
    """(path, body, headers) of one inbound text, as the platform would post it."""
    now = time.time()
    path = PATHS[channel.kind]
    if channel.kind == "sms":
        fields = {
            "MessageSid": "SM" + secrets.token_hex(16),
            "SmsSid": "",
            "AccountSid": channel.account_sid,
            "From": customer.sender,
            "To": channel.key,
            "Body": text,
            "NumMedia": "0",
            "SmsStatus": "received",
            "ApiVersion": "2010-04-01",
        }
        fields["SmsSid"] = fields["MessageSid"]
        signature = twilio_signature(channel.secret, base_url + path, fields.items())
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            TWILIO_HEADER: signature,
        }
        return path, urlencode(fields).encode(), headers
    if channel.kind == "whatsapp":
        payload: dict[str, object] = {
            "object": "whatsapp_business_account",
            "entry": [{"id": channel.key, "changes": [{"field": "messages", "value": {
                "messaging_product": "whatsapp",
                "metadata": {"display_phone_number": channel.key, "phone_number_id": channel.key},
                "contacts": [{"profile": {"name": customer.name}, "wa_id": customer.sender}],
                "messages": [{
                    "from": customer.sender,
                    "id": "wamid.demo" + secrets.token_hex(12),
                    "timestamp": str(int(now)),
                    "type": "text",
                    "text": {"body": text},
                }],
            }}]}],
        }
    else:
        payload = {
            "object": "instagram",
            "entry": [{"id": channel.key, "time": int(now * 1000), "messaging": [{
                "sender": {"id": customer.sender},
                "recipient": {"id": channel.key},
                "timestamp": int(now * 1000),
                "message": {"mid": "demo." + secrets.token_hex(16), "text": text},
            }]}],
        }
    body = json.dumps(payload, ensure_ascii=False).encode()
    signature = meta_signature(channel.secret, body)
    return path, body, {"Content-Type": "application/json", META_HEADER: signature}


class LiveDemo:
    """Picks who writes next and what: mostly customers the organization knows, now and
    then someone new (on WhatsApp, which tells their name)."""

    def __init__(
        self,
        base_url: str,
        channels: dict[str, DemoChannel],
        customers: list[Customer],
        rng: random.Random | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.channels = channels
        self.customers = list(customers)
        self.rng = rng or random.Random()
        self.newcomers = list(NEWCOMERS)
        self.rng.shuffle(self.newcomers)
        self.sent = 0

    def _next(self) -> tuple[Customer, str]:
        new = not self.customers or (
            "whatsapp" in self.channels and self.newcomers and self.rng.random() < 0.15
        )
        if new and self.newcomers and "whatsapp" in self.channels:
            number = f"4479{self.rng.randrange(10**7, 10**8)}"
            customer = Customer("whatsapp", number, self.newcomers.pop())
            self.customers.append(customer)
            return customer, self.rng.choice(FIRST_LINES)
        if not self.customers:
            raise LiveDemoError("the demo organization has no customers to write in")
        return self.rng.choice(self.customers), self.rng.choice(LIVE_LINES)

    async def send_one(self, client: httpx.AsyncClient) -> str:
        """Post one message; answer a line saying who wrote what."""
        customer, text = self._next()
        path, body, headers = signed_request(
            self.base_url, self.channels[customer.kind], customer, text
        )
        try:
            r = await client.post(self.base_url + path, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise LiveDemoError(
                f"cannot reach the service at {self.base_url} ({exc.__class__.__name__}): "
                "is `inbox serve` running there? (--url names another place)"
            ) from None
        if r.status_code != 200:
            raise LiveDemoError(
                f"{path} answered {r.status_code}: {r.text[:300]} (is {self.base_url} the "
                "service whose database this command uses?)"
            )
        self.sent += 1
        return f"{customer.kind:9} {customer.name}: {text}"

    async def run(self, rate: float, count: int | None, say: Callable[[str], None]) -> int:
        """Send ``rate`` messages a second on average until ``count`` are sent (or for
        ever); answer how many were."""
        async with httpx.AsyncClient(timeout=15) as client:
            while count is None or self.sent < count:
                say(await self.send_one(client))
                if count is not None and self.sent >= count:
                    break
                # Irregular, as people are, around the asked-for rate.
                await asyncio.sleep(self.rng.uniform(0.5, 1.5) / rate)
        return self.sent
