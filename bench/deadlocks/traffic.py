"""The mix of requests that makes two processes write the same rows at once.

Many senders write on three channels (WhatsApp, Twilio SMS, the generic webhook) under
one phone number each, so every sender is one contact with a conversation per channel;
a WhatsApp delivery may carry several senders' messages; statuses come for the replies
agents send (some before the send's answer, some for messages that are not ours),
reactions point at stored messages, and agents reply and mark conversations read
through REST. Each request is signed or authenticated as the real caller would.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import random
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import orjson

# What a delivery is, and how often it comes (out of the sum of the weights).
WEIGHTS: dict[str, int] = {
    "whatsapp_messages": 34,
    "whatsapp_new_sender": 4,
    "sms_message": 12,
    "generic_message": 8,
    "whatsapp_statuses": 12,
    "whatsapp_reaction": 6,
    "sms_status": 4,
    "unknown_statuses": 4,
    "reply": 12,
    "mark_read": 3,
    "close": 1,
}
WHATSAPP_PATH = "/webhooks/whatsapp"
SMS_PATH = "/webhooks/twilio/sms"
SMS_STATUS_PATH = "/webhooks/twilio/status"
GENERIC_PATH = "/webhooks/messages/incoming"


@dataclass(frozen=True)
class Request:
    kind: str
    path: str
    body: bytes
    headers: dict[str, str]
    # Where the request must go, when it must (a Twilio signature covers the URL);
    # None: either process.
    target: int | None = None
    method: str = "POST"

    @property
    def webhook(self) -> bool:
        return self.path.startswith("/webhooks/")


@dataclass(frozen=True)
class Accounts:
    """The channels and credentials the requests are made for."""

    token: str
    api_key: str
    whatsapp_secret: str
    phone_number_id: str
    sms_number: str
    sms_account_sid: str
    sms_auth_token: str


@dataclass
class Known:
    """What the run has learnt so far: the rows later requests point at."""

    conversations: list[int] = field(default_factory=list)
    inbound_ids: list[tuple[str, str]] = field(default_factory=list)  # (wamid, sender)
    whatsapp_sent: list[tuple[str, str]] = field(default_factory=list)  # (wamid, recipient)
    sms_sent: list[tuple[str, str]] = field(default_factory=list)  # (sid, recipient)


class Traffic:
    def __init__(
        self, accounts: Accounts, senders: int, seed: int, run: str, urls: list[str]
    ) -> None:
        self.accounts = accounts
        self.random = random.Random(seed)
        self.run = run
        # The service's base URLs, as Twilio signs them.
        self.urls = urls
        self.senders = [f"1650555{n:04d}" for n in range(senders)]
        self.known = Known()
        self._seq = 0
        self._kinds = list(WEIGHTS)
        self._weights = [WEIGHTS[k] for k in self._kinds]

    def _next(self) -> int:
        self._seq += 1
        return self._seq

    def next_request(self) -> Request:
        while True:
            kind = self.random.choices(self._kinds, self._weights)[0]
            request: Request | None = getattr(self, kind)()
            if request is not None:
                return request

    # -- WhatsApp --------------------------------------------------------------------

    def _whatsapp(self, kind: str, value: dict[str, Any]) -> Request:
        value = {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881",
                         "phone_number_id": self.accounts.phone_number_id},
            **value,
        }
        body = orjson.dumps({"object": "whatsapp_business_account", "entry": [
            {"id": "102290129340398", "changes": [{"field": "messages", "value": value}]}
        ]})
        signature = hmac.new(self.accounts.whatsapp_secret.encode(), body, hashlib.sha256)
        return Request(kind, WHATSAPP_PATH, body, {
            "Content-Type": "application/json",
            "X-Hub-Signature-256": f"sha256={signature.hexdigest()}",
        })

    def whatsapp_text(self, senders: list[str], kind: str = "whatsapp_messages") -> Request:
        contacts, messages = [], []
        for sender in senders:
            wamid = f"wamid.dl.{self.run}.{self._next()}"
            contacts.append({"profile": {"name": f"Sender {sender}"}, "wa_id": sender})
            messages.append({"from": sender, "id": wamid, "timestamp": str(int(time.time())),
                             "type": "text", "text": {"body": f"hello from {sender}"}})
            self.known.inbound_ids.append((wamid, sender))
        return self._whatsapp(kind, {"contacts": contacts, "messages": messages})

    def whatsapp_messages(self) -> Request:
        # One sender mostly; a few at once as WhatsApp batches them under load.
        count = self.random.choices((1, 2, 3), (6, 3, 1))[0]
        return self.whatsapp_text(self.random.sample(self.senders, count))

    def whatsapp_new_sender(self) -> Request:
        sender = f"1651555{self._next():06d}"
        return self.whatsapp_text([sender], "whatsapp_new_sender")

    def whatsapp_reaction(self) -> Request | None:
        if not self.known.inbound_ids:
            return None
        target, _ = self.random.choice(self.known.inbound_ids[-500:])
        sender = self.random.choice(self.senders)
        message = {"from": sender, "id": f"wamid.re.{self.run}.{self._next()}",
                   "timestamp": str(int(time.time())), "type": "reaction",
                   "reaction": {"message_id": target, "emoji": "\N{THUMBS UP SIGN}"}}
        return self._whatsapp("whatsapp_reaction", {
            "contacts": [{"profile": {"name": f"Sender {sender}"}, "wa_id": sender}],
            "messages": [message],
        })

    def whatsapp_status(self, wamid: str, recipient: str, status: str) -> Request:
        return self._whatsapp("whatsapp_status", {"statuses": [
            {"id": wamid, "status": status, "timestamp": str(int(time.time())),
             "recipient_id": recipient}
        ]})

    def whatsapp_statuses(self) -> Request | None:
        if not self.known.whatsapp_sent:
            return None
        count = self.random.choices((1, 2, 4), (5, 3, 2))[0]
        chosen = [self.random.choice(self.known.whatsapp_sent[-300:]) for _ in range(count)]
        statuses = [
            {"id": wamid, "status": self.random.choice(("delivered", "read")),
             "timestamp": str(int(time.time())), "recipient_id": recipient}
            for wamid, recipient in chosen
        ]
        return self._whatsapp("whatsapp_statuses", {"statuses": statuses})

    def unknown_statuses(self) -> Request:
        """Statuses of messages sent from elsewhere: kept a while as pending."""
        recipient = self.random.choice(self.senders)
        wamid = f"wamid.elsewhere.{self.run}.{self._next()}"
        return self._whatsapp("unknown_statuses", {"statuses": [
            {"id": wamid, "status": "delivered", "timestamp": str(int(time.time())),
             "recipient_id": recipient}
        ]})

    # -- Twilio ----------------------------------------------------------------------

    def _twilio(
        self, kind: str, path: str, fields: dict[str, str], target: int | None = None
    ) -> Request:
        if target is None:
            target = self.random.randrange(len(self.urls))
        url = self.urls[target] + path
        data = url + "".join(name + fields[name] for name in sorted(fields))
        digest = hmac.new(self.accounts.sms_auth_token.encode(), data.encode(), hashlib.sha1)
        return Request(kind, path, urlencode(fields).encode(), {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": base64.b64encode(digest.digest()).decode(),
        }, target)

    def sms_text(self, sender: str, target: int | None = None) -> Request:
        sid = f"SM{self.run}{self._next():026d}"[:34]
        return self._twilio("sms_message", SMS_PATH, {
            "AccountSid": self.accounts.sms_account_sid, "MessageSid": sid, "SmsSid": sid,
            "From": f"+{sender}", "To": self.accounts.sms_number, "Body": f"sms from {sender}",
            "NumMedia": "0", "SmsStatus": "received", "ApiVersion": "2010-04-01",
        }, target)

    def sms_message(self) -> Request:
        return self.sms_text(self.random.choice(self.senders))

    def sms_status_of(self, sid: str, recipient: str, status: str) -> Request:
        return self._twilio("sms_status", SMS_STATUS_PATH, {
            "AccountSid": self.accounts.sms_account_sid, "MessageSid": sid, "SmsSid": sid,
            "From": self.accounts.sms_number, "To": recipient, "MessageStatus": status,
            "SmsStatus": status, "ApiVersion": "2010-04-01",
        })

    def sms_status(self) -> Request | None:
        if not self.known.sms_sent:
            return None
        sid, recipient = self.random.choice(self.known.sms_sent[-300:])
        return self.sms_status_of(sid, recipient, "delivered")

    # -- the generic webhook and REST ------------------------------------------------

    def generic_text(self, sender: str) -> Request:
        body = orjson.dumps({"from": f"+{sender}", "content": f"form from {sender}",
                             "platform": "sms", "name": f"Sender {sender}",
                             "external_id": f"generic.{self.run}.{self._next()}"})
        return Request("generic_message", GENERIC_PATH, body, {
            "Content-Type": "application/json", "X-Api-Key": self.accounts.api_key,
        })

    def generic_message(self) -> Request:
        return self.generic_text(self.random.choice(self.senders))

    def _rest(
        self, kind: str, path: str, payload: dict[str, Any] | None, method: str = "POST"
    ) -> Request:
        headers = {"Authorization": f"Bearer {self.accounts.token}"}
        if payload is None:
            return Request(kind, path, b"", headers, method=method)
        headers["Content-Type"] = "application/json"
        return Request(kind, path, orjson.dumps(payload), headers, method=method)

    def reply(self) -> Request | None:
        if not self.known.conversations:
            return None
        conversation = self.random.choice(self.known.conversations)
        return self._rest("reply", f"/api/conversations/{conversation}/messages",
                          {"content": f"reply {self._next()}"})

    def mark_read(self) -> Request | None:
        if not self.known.conversations:
            return None
        conversation = self.random.choice(self.known.conversations)
        return self._rest("mark_read", f"/api/conversations/{conversation}/read", None)

    def close(self) -> Request | None:
        """Closed: the sender's next message opens a new conversation."""
        if not self.known.conversations:
            return None
        conversation = self.random.choice(self.known.conversations)
        return self._rest("close", f"/api/conversations/{conversation}", {"status": "closed"},
                          "PATCH")
