"""The realtime side of one process: broker, hub, presence, live metrics and ``/ws``.

Committed events come in through ``publish`` (the outbox's sink), go to the
broker once, serialized once, and come back to every process's hub, which
fans them out to that process's WebSockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from redis.exceptions import RedisError
from sqlalchemy import bindparam
from sqlmodel import col, select
from starlette.requests import HTTPConnection

from realtime.broker import Broker, BrokerUnavailable, create_backend
from realtime.endpoint import HandshakeRefused, RealtimeEndpoint, Session
from realtime.envelope import Envelope
from realtime.hub import Hub
from realtime.origins import same_origin
from realtime.presence import create_presence
from realtime.protocol import FrameError

from ..auth import Authenticator, Principal, as_role, credentials_from_headers
from ..db import Database
from ..errors import ApiError, NotFound, ServiceUnavailable
from ..models import ApiKey, Conversation, User
from ..schemas.fields import MAX_ID
from ..services.metrics import METRIC_EVENTS, LiveMetrics
from ..services.outbox import OutboxEvent
from ..settings import Settings
from .asyncapi import EVENT_TYPES
from .outbox_log import OutboxLog, envelope_of
from .tickets import (
    TICKET_TTL_SECONDS,
    MemoryUsedTickets,
    RedisUsedTickets,
    UsedTickets,
    issue_ticket,
    read_ticket,
    revoked_ticket,
    used_ticket,
)

log = logging.getLogger("inbox.live")

CHANNEL_PREFIX = "inbox"
REVOKED = "session.revoked"
PRUNE_EVERY_SECONDS = 3600

# Typing frames come every few seconds from every typist: the conversations found are
# remembered, so a typist costs one query a minute, not one a frame. Conversations
# disappear only with their contact, whose deletion forgets the organization's at once.
KNOWN_CONVERSATIONS = 10_000
KNOWN_CONVERSATION_SECONDS = 60.0

# Built once: it runs for typing frames.
_CONVERSATION_OF_ORG = select(col(Conversation.id)).where(
    col(Conversation.id) == bindparam("conversation_id"),
    col(Conversation.organization_id) == bindparam("org_id"),
)


def user_subject(user_id: int | None) -> str:
    return f"user:{user_id}"


def key_subject(api_key_id: int | None) -> str:
    return f"key:{api_key_id}"


def subject_of(principal: Principal) -> str:
    """What a revocation names: the user, or the API key."""
    if principal.user_id is not None:
        return user_subject(principal.user_id)
    return key_subject(principal.api_key_id)


class KnownConversations:
    """(organization, conversation) pairs found to exist lately, the oldest dropped first.

    Only found ones are kept: a conversation created a moment after a miss is found
    on the next frame, and ids guessed by a client fill nothing.
    """

    def __init__(
        self, size: int = KNOWN_CONVERSATIONS, ttl: float = KNOWN_CONVERSATION_SECONDS
    ) -> None:
        self.size = size
        self.ttl = ttl
        self._until: OrderedDict[tuple[int, int], float] = OrderedDict()
        # Bumped by every forget: a lookup that started before one must not store what
        # it found, which may be a conversation deleted meanwhile.
        self.generation = 0

    def __contains__(self, key: tuple[int, int]) -> bool:
        until = self._until.get(key)
        if until is None:
            return False
        if until <= time.monotonic():
            del self._until[key]
            return False
        return True

    def add(self, key: tuple[int, int], generation: int) -> None:
        if generation != self.generation:
            return
        self._until[key] = time.monotonic() + self.ttl
        self._until.move_to_end(key)
        while len(self._until) > self.size:
            self._until.popitem(last=False)

    def forget_organization(self, org_id: int) -> None:
        self.generation += 1
        for key in [key for key in self._until if key[0] == org_id]:
            del self._until[key]


class Live:
    def __init__(self, settings: Settings, db: Database, auth: Authenticator) -> None:
        self.settings = settings
        self.db = db
        self.auth = auth
        self.log = OutboxLog(db, settings.event_retention_days)
        self.hub = Hub(dense_ids=self.log)
        self.broker = Broker(
            create_backend(settings.redis_url, prefix=CHANNEL_PREFIX),
            on_event=self._received,
            on_reconnected=self._caught_up,
        )
        self.presence = create_presence(
            settings.redis_url, self._presence_changed, prefix=CHANNEL_PREFIX
        )
        self.metrics = LiveMetrics(db, self._publish_metrics, self._agents_online)
        self.used_tickets: UsedTickets = (
            RedisUsedTickets(settings.redis_url) if settings.redis_url else MemoryUsedTickets()
        )
        self.conversations = KnownConversations()
        self.endpoint = RealtimeEndpoint(
            hub=self.hub,
            event_log=self.log,
            authenticate=self.authenticate,
            origin_allowed=self._origin_allowed,
            on_typing=self._typing,
            presence=self.presence,
            event_types=EVENT_TYPES,
        )
        self._pruner: asyncio.Task[None] | None = None
        self._broker_down_logged = False

    async def start(self) -> None:
        await self.broker.start()
        await self.presence.start()
        self._pruner = asyncio.create_task(self._prune_forever(), name="outbox-retention")

    async def stop(self) -> None:
        await self.hub.close_all()
        if self._pruner is not None:
            self._pruner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pruner
        await self.metrics.close()
        await self.presence.stop()
        await self.broker.stop()
        await self.used_tickets.close()

    async def figures(self, org_id: int) -> dict[str, Any]:
        """The organization's live figures now, as ``metrics.update`` carries them."""
        try:
            return await self.metrics.current(org_id)
        except RedisError as exc:
            # Who is online lives in Redis; the rest of the service works on without it.
            raise ServiceUnavailable("Live figures are unavailable: Redis does not answer") from exc

    async def broker_ready(self) -> None:
        if not await self.broker.ping():
            raise BrokerUnavailable("the broker does not answer")

    # -- the outbox's sink ---------------------------------------------------------

    async def publish(self, events: Sequence[OutboxEvent]) -> None:
        envelopes = []
        for event in events:
            try:
                envelopes.append(envelope_of(event))
            except Exception:
                # Its data was encoded before commit, so this is not expected; if it comes,
                # it costs that event alone: the others go out, and the hub reads it from
                # the outbox when the next one shows the gap.
                log.exception("event %d (%s) cannot be published", event.id, event.type)
        await self._send(*envelopes)
        for org_id in {e.organization_id for e in events if e.type in METRIC_EVENTS}:
            self.metrics.touch(org_id)

    async def _send(self, *envelopes: Envelope) -> None:
        try:
            await self.broker.publish(*envelopes)
            self._broker_down_logged = False
        except BrokerUnavailable:
            # Stored events reach everyone after the broker's reconnect catch-up.
            if not self._broker_down_logged:
                log.warning("broker unavailable: live events wait for its return")
                self._broker_down_logged = True

    def _received(self, envelope: Envelope) -> None:
        if envelope.type == REVOKED:
            # An instruction for every process's hub, never an event for clients.
            subject = orjson.loads(envelope.frame)["data"]["subject"]
            self._revoked(envelope.organization_id, str(subject))
            return
        if envelope.type == "contact.deleted":
            # Its conversations went with it; which ones, the event does not say.
            self.conversations.forget_organization(envelope.organization_id)
        self.hub.dispatch(envelope)

    async def revoke(self, org_id: int, subject: str) -> None:
        """Close every live connection of a deactivated user or deleted key, and stop
        trusting the key, everywhere."""
        self._revoked(org_id, subject)
        await self._send(Envelope.build(REVOKED, org_id, {"subject": subject}))

    def _revoked(self, org_id: int, subject: str) -> None:
        kind, _, subject_id = subject.partition(":")
        if kind == "key" and subject_id.isdigit():
            self.auth.forget_key(int(subject_id))
        self.hub.revoke(org_id, subject)

    async def _caught_up(self) -> None:
        replayed = await self.hub.catch_up(self.log)
        log.info("broker back: %d stored events replayed to local connections", replayed)

    async def _publish_metrics(self, org_id: int, snapshot: dict[str, Any]) -> None:
        await self._send(Envelope.build("metrics.update", org_id, snapshot))

    async def _agents_online(self, org_id: int) -> int:
        return len(await self.presence.online(org_id))

    async def _presence_changed(self, org_id: int, user_id: int, online: bool) -> None:
        status = "online" if online else "offline"
        await self._send(
            Envelope.build("agent.status", org_id, {"user_id": user_id, "status": status})
        )
        self.metrics.touch(org_id)

    async def _typing(self, session: Session, conversation_id: int, connection_id: str) -> None:
        if not await self._conversation_exists(session.organization_id, conversation_id):
            # Another organization's conversation is refused in the same words as a missing
            # one: the answer must not tell which ids exist elsewhere.
            missing = NotFound(f"Conversation {conversation_id} not found")
            raise FrameError(missing.code, missing.message)
        data = {
            "conversation_id": conversation_id,
            "user_id": session.user_id,
            "connection_id": connection_id,
        }
        await self._send(Envelope.build("typing", session.organization_id, data))

    async def _conversation_exists(self, org_id: int, conversation_id: int) -> bool:
        if conversation_id > MAX_ID:
            # No row has it, and the database driver would fail on it rather than find none.
            return False
        key = (org_id, conversation_id)
        if key in self.conversations:
            return True
        generation = self.conversations.generation
        params = {"conversation_id": conversation_id, "org_id": org_id}
        async with self.db.engine.connect() as connection:
            found = (await connection.execute(_CONVERSATION_OF_ORG, params)).first() is not None
        if found:
            self.conversations.add(key, generation)
        return found

    async def _prune_forever(self) -> None:
        while True:
            try:
                await self.log.prune()
            except Exception:
                log.exception("pruning the outbox failed")
            await asyncio.sleep(PRUNE_EVERY_SECONDS)

    # -- who may connect ---------------------------------------------------------------

    def _origin_allowed(self, origin: str, addressed_to: str) -> bool:
        # Scheme, host and port, all three: an http:// page is not the https://
        # deployment, nor is another port of its host. Unlisted, the service's own
        # origin: its public URL when set, else the one the handshake was addressed to.
        allowed = self.settings.allowed_origins
        if "*" in allowed:
            return True
        return same_origin(origin, allowed or [self.settings.public_url or addressed_to])

    def ticket_for(self, principal: Principal) -> dict[str, Any]:
        ticket = issue_ticket(
            self.settings.signing_key,
            organization_id=principal.organization_id,
            user_id=principal.user_id,
            api_key_id=principal.api_key_id,
        )
        return {"ticket": ticket, "expires_in": TICKET_TTL_SECONDS}

    async def authenticate(self, conn: HTTPConnection) -> Session:
        query = conn.query_params
        try:
            if "ticket" in query:
                principal = await self._redeem(query["ticket"])
            else:
                credential = credentials_from_headers(
                    conn.headers.get("authorization"), conn.headers.get("x-api-key")
                ) or query.get("token")
                principal = await self.auth.authenticate(credential)
        except ApiError as exc:
            # REST's code, words and details; the status stays the documented 403.
            raise HandshakeRefused(exc.code, exc.message, exc.details) from None
        user = principal.user
        return Session(
            organization_id=principal.organization_id,
            user=(
                {"id": user.id, "email": user.email, "name": user.name, "role": user.role}
                if user is not None
                else {"api_key_id": principal.api_key_id, "role": principal.role}
            ),
            user_id=principal.user_id,
            expires_at=principal.expires_at,
            subject=subject_of(principal),
        )

    async def _redeem(self, ticket: str) -> Principal:
        claims = read_ticket(self.settings.signing_key, ticket)
        if not await self.used_tickets.first_use(str(claims["jti"]), TICKET_TTL_SECONDS * 2):
            raise used_ticket()
        org_id = int(claims["org"])
        # A ticket starts a session as long as a fresh access token would last.
        expires_at = datetime.now(UTC) + timedelta(seconds=self.settings.access_token_ttl)
        async with self.db.session() as session:
            if "sub" in claims:
                user = await session.get(User, int(claims["sub"]))
                if user is None or not user.is_active or user.organization_id != org_id:
                    raise revoked_ticket()
                return Principal(org_id, as_role(user.role), user=user, expires_at=expires_at)
            key = (
                await session.exec(select(ApiKey).where(col(ApiKey.id) == claims.get("key")))
            ).first()
            if key is None or key.organization_id != org_id:
                raise revoked_ticket()
            return Principal(org_id, as_role(key.role), api_key_id=key.id, expires_at=expires_at)
