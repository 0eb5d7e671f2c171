"""`InboxClient`: typed calls to the REST API and the resuming event stream."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Mapping
from types import TracebackType
from typing import Any, cast

import httpx

from .errors import InboxError
from .stream import Backoff, Position, stream
from .types import (
    Contact,
    ContactDetail,
    ContactFields,
    ContactStatus,
    Conversation,
    ConversationPage,
    ConversationStatus,
    DeliveryPage,
    DeliveryStatus,
    Event,
    Lead,
    LeadFields,
    LeadStatus,
    Message,
    MessagePage,
    Page,
    Webhook,
    WebhookDelivery,
    WebhookFields,
    WebhookWithSecret,
)

# What an unchanged field of a PATCH is told apart from an explicit null by.
UNSET: Any = object()
# Answers after which the same request, with the same idempotency key, is sent again.
_RETRY_STATUSES = frozenset({429, 502, 503, 504})


class InboxClient:
    """``async with InboxClient(url, api_key=...) as inbox: ...``

    ``token`` is an access token from /api/auth/login; ``api_key`` a key from
    /api/api-keys. Every refusal raises `InboxError`.
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        api_key: str | None = None,
        timeout: float = 10.0,
        retries: int = 3,
        backoff: Backoff | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if (token is None) == (api_key is None):
            raise ValueError("give exactly one of token= and api_key=")
        self.base_url = base_url.rstrip("/")
        self.retries = retries
        self.backoff = backoff or Backoff()
        self._position = Position(None)
        credential = token if token is not None else api_key
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {credential}", "Accept": "application/json"},
            timeout=timeout,
            transport=transport,
        )

    async def __aenter__(self) -> InboxClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    @property
    def last_event_id(self) -> int | None:
        """The id of the last stored event `events()` handed out: persist it, and pass it
        back as ``last_event_id`` to carry on from there."""
        return self._position.last_event_id

    # -- the event stream ---------------------------------------------------------------

    def events(
        self, types: Iterable[str] | None = None, last_event_id: int | None = None
    ) -> AsyncGenerator[Event, None]:
        """Every event of the organization from ``last_event_id`` on (from now when None),
        in order, each once, across reconnects and restarts of the service. Raises
        `ReplayTruncated` when that position is no longer kept, `InboxError` when the
        credential is refused. One stream per client at a time: it keeps the position."""
        self._position.last_event_id = last_event_id
        scheme, rest = self.base_url.split("://", 1)
        ws_url = f"{'wss' if scheme == 'https' else 'ws'}://{rest}/ws"
        return stream(
            ws_url=ws_url,
            ticket=self.ticket,
            position=self._position,
            types=list(types) if types is not None else None,
            backoff=self.backoff,
        )

    async def ticket(self) -> str:
        """A single-use ticket that opens one socket on /ws within 30 s."""
        answer = await self._call("POST", "/api/realtime/tickets")
        return str(answer["ticket"])

    # -- conversations and messages -----------------------------------------------------

    async def list_conversations(
        self,
        *,
        status: ConversationStatus | None = None,
        assignee_id: int | None = None,
        assignee: str | None = None,
        channel_id: int | None = None,
        contact_id: int | None = None,
        unread: bool | None = None,
        label: str | None = None,
        q: str | None = None,
        view: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> ConversationPage:
        """One page, newest activity first; pass ``pagination["next_cursor"]`` back as
        ``cursor`` for the next. ``assignee``: "me" or "none"."""
        params = _params(
            status=status, assignee_id=assignee_id, assignee=assignee, channel_id=channel_id,
            contact_id=contact_id, unread=unread, label=label, q=q, view=view, limit=limit,
            cursor=cursor,
        )
        return cast(ConversationPage, await self._call("GET", "/api/conversations", params))

    async def iter_conversations(self, **filters: Any) -> AsyncIterator[Conversation]:
        """Every conversation the filters of `list_conversations` select, page by page."""
        cursor = filters.pop("cursor", None)
        while True:
            page = await self.list_conversations(cursor=cursor, **filters)
            for conversation in page["data"]:
                yield conversation
            cursor = page["pagination"]["next_cursor"]
            if not page["pagination"]["has_more"] or cursor is None:
                return

    async def get_conversation(self, conversation_id: int) -> Conversation:
        return cast(Conversation, await self._call("GET", f"/api/conversations/{conversation_id}"))

    async def update_conversation(
        self,
        conversation_id: int,
        *,
        status: ConversationStatus = UNSET,
        assignee_id: int | None = UNSET,
        labels: list[str] = UNSET,
        snoozed_until: str | None = UNSET,
    ) -> Conversation:
        """Change what is given; ``assignee_id=None`` unassigns."""
        body = {
            name: value
            for name, value in (
                ("status", status), ("assignee_id", assignee_id), ("labels", labels),
                ("snoozed_until", snoozed_until),
            )
            if value is not UNSET
        }
        path = f"/api/conversations/{conversation_id}"
        return cast(Conversation, await self._call("PATCH", path, json=body))

    async def list_messages(
        self,
        conversation_id: int,
        *,
        before: int | None = None,
        after: int | None = None,
        limit: int | None = None,
    ) -> MessagePage:
        params = _params(before=before, after=after, limit=limit)
        path = f"/api/conversations/{conversation_id}/messages"
        return cast(MessagePage, await self._call("GET", path, params))

    async def reply(
        self,
        conversation_id: int,
        content: str,
        *,
        private: bool = False,
        attachments: list[dict[str, Any]] | None = None,
        template: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Message:
        """Reply in a conversation (or add a private note). The call is sent again after a
        lost answer or a busy service with the same idempotency key (one is made when none
        is given), so the customer gets the reply once however often it is retried."""
        body: dict[str, Any] = {"content": content, "private": private}
        if attachments is not None:
            body["attachments"] = attachments
        if template is not None:
            body["template"] = template
        headers = {"Idempotency-Key": idempotency_key or str(uuid.uuid4())}
        path = f"/api/conversations/{conversation_id}/messages"
        return cast(Message, await self._call("POST", path, json=body, headers=headers))

    # -- contacts -----------------------------------------------------------------------

    async def list_contacts(
        self,
        *,
        search: str | None = None,
        tags: str | None = None,
        status: ContactStatus | None = None,
        sort: str | None = None,
        order: str | None = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> Page[Contact]:
        params = _params(search=search, tags=tags, status=status, sort=sort, order=order,
                         limit=limit, offset=offset)
        return cast(Page[Contact], await self._call("GET", "/api/contacts", params))

    async def get_contact(self, contact_id: int) -> ContactDetail:
        return cast(ContactDetail, await self._call("GET", f"/api/contacts/{contact_id}"))

    async def create_contact(self, contact: ContactFields) -> Contact:
        return cast(Contact, await self._call("POST", "/api/contacts", json=contact))

    async def update_contact(self, contact_id: int, changes: ContactFields) -> Contact:
        path = f"/api/contacts/{contact_id}"
        return cast(Contact, await self._call("PATCH", path, json=changes))

    async def delete_contact(self, contact_id: int) -> None:
        await self._call("DELETE", f"/api/contacts/{contact_id}")

    # -- leads --------------------------------------------------------------------------

    async def list_leads(
        self,
        *,
        status: LeadStatus | None = None,
        contact_id: int | None = None,
        source: str | None = None,
        q: str | None = None,
        sort: str | None = None,
        order: str | None = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> Page[Lead]:
        params = _params(status=status, contact_id=contact_id, source=source, q=q, sort=sort,
                         order=order, limit=limit, offset=offset)
        return cast(Page[Lead], await self._call("GET", "/api/leads", params))

    async def get_lead(self, lead_id: int) -> Lead:
        return cast(Lead, await self._call("GET", f"/api/leads/{lead_id}"))

    async def create_lead(self, lead: LeadFields) -> Lead:
        return cast(Lead, await self._call("POST", "/api/leads", json=lead))

    async def update_lead(self, lead_id: int, changes: LeadFields) -> Lead:
        return cast(Lead, await self._call("PATCH", f"/api/leads/{lead_id}", json=changes))

    async def convert_lead(self, lead_id: int) -> Lead:
        return cast(Lead, await self._call("POST", f"/api/leads/{lead_id}/convert"))

    async def delete_lead(self, lead_id: int) -> None:
        await self._call("DELETE", f"/api/leads/{lead_id}")

    # -- outgoing webhooks (admins) -----------------------------------------------------

    async def list_webhooks(
        self, *, limit: int | None = None, offset: int | None = None
    ) -> Page[Webhook]:
        params = _params(limit=limit, offset=offset)
        return cast(Page[Webhook], await self._call("GET", "/api/webhooks", params))

    async def get_webhook(self, webhook_id: int) -> Webhook:
        return cast(Webhook, await self._call("GET", f"/api/webhooks/{webhook_id}"))

    async def create_webhook(self, webhook: WebhookFields) -> WebhookWithSecret:
        """Needs ``url`` and ``events``; the answer's ``secret`` is shown this once."""
        return cast(WebhookWithSecret, await self._call("POST", "/api/webhooks", json=webhook))

    async def update_webhook(self, webhook_id: int, changes: WebhookFields) -> Webhook:
        path = f"/api/webhooks/{webhook_id}"
        return cast(Webhook, await self._call("PATCH", path, json=changes))

    async def delete_webhook(self, webhook_id: int) -> None:
        await self._call("DELETE", f"/api/webhooks/{webhook_id}")

    async def rotate_webhook_secret(self, webhook_id: int) -> WebhookWithSecret:
        path = f"/api/webhooks/{webhook_id}/rotate-secret"
        return cast(WebhookWithSecret, await self._call("POST", path))

    async def test_webhook(self, webhook_id: int) -> WebhookDelivery:
        path = f"/api/webhooks/{webhook_id}/test"
        return cast(WebhookDelivery, await self._call("POST", path))

    async def list_webhook_deliveries(
        self,
        webhook_id: int,
        *,
        status: DeliveryStatus | None = None,
        limit: int | None = None,
        before: int | None = None,
    ) -> DeliveryPage:
        params = _params(status=status, limit=limit, before=before)
        path = f"/api/webhooks/{webhook_id}/deliveries"
        return cast(DeliveryPage, await self._call("GET", path, params))

    async def redeliver(self, webhook_id: int, delivery_id: int) -> WebhookDelivery:
        path = f"/api/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver"
        return cast(WebhookDelivery, await self._call("POST", path))

    # -- the wire -----------------------------------------------------------------------

    async def _call(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """The answer's JSON; `InboxError` on a refusal. Only requests that are safe to
        repeat (reads, and writes carrying an idempotency key) are tried again."""
        repeatable = method == "GET" or (headers is not None and "Idempotency-Key" in headers)
        attempt = 0
        while True:
            try:
                response = await self._http.request(
                    method, path, params=params, json=json, headers=headers
                )
            except httpx.TransportError:
                if not repeatable or attempt >= self.retries:
                    raise
                await asyncio.sleep(self.backoff.delay(attempt))
                attempt += 1
                continue
            if response.is_success:
                return None if response.status_code == 204 else response.json()
            error = InboxError.from_response(response)
            if not repeatable or attempt >= self.retries or error.status not in _RETRY_STATUSES:
                raise error
            delay = error.retry_after
            await asyncio.sleep(delay if delay is not None else self.backoff.delay(attempt))
            attempt += 1


def _params(**values: Any) -> dict[str, Any]:
    return {
        name: (str(value).lower() if isinstance(value, bool) else value)
        for name, value in values.items()
        if value is not None
    }
