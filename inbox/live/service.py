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
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from redis.exceptions import RedisError
from sqlalchemy import bindparam
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import col, select
from starlette.requests import HTTPConnection

from realtime.broker import Broker, BrokerUnavailable, create_backend
from realtime.endpoint import HandshakeRefused, RealtimeEndpoint, Session
from realtime.envelope import Envelope
from realtime.hub import CLOSE_UNAUTHORIZED, Connection, Hub
from realtime.origins import same_origin
from realtime.presence import create_presence
from realtime.protocol import FrameError

from ..auth import (
    Authenticator,
    Principal,
    api_key_by_id,
    check_scope,
    credentials_from_headers,
    user_principal,
)
from ..db import Database
from ..errors import ApiError, AuthenticationFailed, NotFound, ServiceUnavailable
from ..events import EventType
from ..models import Conversation
from ..schemas.fields import MAX_ID
from ..services.metrics import METRIC_EVENTS, LiveMetrics
from ..services.outbox import OutboxEvent
from ..settings import Settings
from .asyncapi import EVENT_TYPES
from .outbox_log import OutboxLog, envelope_of
from .revocation import CredentialCheck, Subject, parse_subject
from .tickets import (
    UsedTickets,
    credential_expired_ticket,
    issue_ticket,
    read_ticket,
    revoked_ticket,
    used_ticket,
)

log = logging.getLogger("inbox.live")

CHANNEL_PREFIX = "inbox"
# An instruction for every process over the broker, never an event for clients.
REVOKED = "session.revoked"
PRUNE_EVERY_SECONDS = 3600
# How often each process checks the credentials its sockets were opened with against
# the database: the bound on a revocation the broker did not carry (it was down, or the
# change came from the command line or by hand).
RECHECK_EVERY_SECONDS = 5.0
# An organization whose last socket closed is still looked at for this long: a socket
# is registered a moment after its credential was checked.
RECHECK_LINGER_SECONDS = 60.0
STORAGE_ERRORS = (SQLAlchemyError, OSError, TimeoutError)
HANDSHAKE_UNAVAILABLE = (
    "Cannot check credentials now: the database does not answer; try again shortly"
)

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


def subject_of(principal: Principal) -> str:
    """What a socket is held by, as revocations name it: the user and the session epoch
    of its credential, or the API key."""
    if principal.user_id is not None:
        return Subject("user", principal.user_id, principal.session_epoch or 0).text
    assert principal.api_key_id is not None
    return Subject("key", principal.api_key_id).text


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
        self.hub = Hub(fill_gaps_from=self.log)
        self.broker = Broker(
            create_backend(settings.redis_url, prefix=CHANNEL_PREFIX),
            on_event=self._received,
            on_reconnected=self._caught_up,
        )
        self.presence = create_presence(
            settings.redis_url, self._presence_changed, prefix=CHANNEL_PREFIX
        )
        self.metrics = LiveMetrics(db, self._publish_metrics, self._agents_online)
        self.used_tickets = UsedTickets(db)
        self.credentials = CredentialCheck(db)
        # Organizations that had a socket here lately: what the recheck looks at.
        self._organizations: dict[int, float] = {}
        self.conversations = KnownConversations()
        self.endpoint = RealtimeEndpoint(
            hub=self.hub,
            event_log=self.log,
            authenticate=self.authenticate,
            origin_allowed=self._origin_allowed,
            on_typing=self._typing,
            presence=self.presence,
            event_types=EVENT_TYPES,
            direct_frames=settings.ws_direct_frames,
        )
        self._pruner: asyncio.Task[None] | None = None
        self._rechecker: asyncio.Task[None] | None = None
        self._broker_down_logged = False
        self._recheck_failing = False

    async def start(self) -> None:
        await self.broker.start()
        await self.presence.start()
        self._pruner = asyncio.create_task(self._prune_forever(), name="outbox-retention")
        self._rechecker = asyncio.create_task(self._recheck_forever(), name="credential-check")

    async def stop(self) -> None:
        await self.hub.close_all()
        for task in (self._pruner, self._rechecker):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self.metrics.close()
        await self.presence.stop()
        await self.broker.stop()

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
            self._instructed(envelope)
            return
        if envelope.type == EventType.CONTACT_DELETED:
            # Its conversations went with it; which ones, the event does not say.
            self.conversations.forget_organization(envelope.organization_id)
        self.hub.dispatch(envelope)

    def _instructed(self, envelope: Envelope) -> None:
        try:
            data = orjson.loads(envelope.frame)["data"]
            subject = parse_subject(str(data["subject"]))
            keys = [int(k) for k in data.get("keys", ())]
            epoch = data.get("epoch")
        except (KeyError, TypeError, ValueError, orjson.JSONDecodeError):
            log.warning("ignoring a malformed %s instruction", envelope.type)
            return
        if subject.kind == "key":
            self._key_revoked(envelope.organization_id, subject.id)
        else:
            # Without an epoch (a process of an older version): every session of the user.
            below = int(epoch) if isinstance(epoch, int) else None
            self._user_revoked(envelope.organization_id, subject.id, below, keys)

    async def revoke_user(
        self, org_id: int, user_id: int, epoch: int, keys: Sequence[int] = ()
    ) -> None:
        """Close, in every process, the sockets opened with a session of the user older
        than ``epoch``, and those of ``keys`` (the keys that stopped with the user)."""
        self._user_revoked(org_id, user_id, epoch, keys)
        data = {"subject": Subject("user", user_id).text, "epoch": epoch, "keys": list(keys)}
        await self._send(Envelope.build(REVOKED, org_id, data))

    async def revoke_key(self, org_id: int, api_key_id: int) -> None:
        """Close, in every process, the sockets a deleted key opened; stop trusting it."""
        self._key_revoked(org_id, api_key_id)
        await self._send(Envelope.build(REVOKED, org_id, {"subject": f"key:{api_key_id}"}))

    def _user_revoked(
        self, org_id: int, user_id: int, below: int | None, keys: Sequence[int]
    ) -> None:
        self.auth.forget_owner(user_id)
        for key_id in keys:
            self._key_revoked(org_id, key_id)

        def ended(subject: Subject) -> bool:
            return (
                subject.kind == "user"
                and subject.id == user_id
                and (below is None or subject.epoch < below)
            )

        self._close(org_id, ended)

    def _key_revoked(self, org_id: int, api_key_id: int) -> None:
        self.auth.forget_key(api_key_id)
        self._close(org_id, lambda subject: subject.kind == "key" and subject.id == api_key_id)

    def _close(self, org_id: int, which: Callable[[Subject], bool]) -> int:
        closed = 0
        for connection in self.hub.connections(org_id):
            subject = _subject_of(connection)
            if subject is not None and which(subject):
                connection.close(CLOSE_UNAUTHORIZED)
                closed += 1
        return closed

    async def recheck(self) -> int:
        """Close the local sockets whose credential was revoked, as the database says
        now; answer how many."""
        now = time.monotonic()
        held: list[tuple[Connection, Subject]] = []
        for org_id, seen in list(self._organizations.items()):
            connections = self.hub.connections(org_id)
            if not connections and now - seen > RECHECK_LINGER_SECONDS:
                del self._organizations[org_id]
            for connection in connections:
                subject = _subject_of(connection)
                if subject is not None and not connection.closing:
                    held.append((connection, subject))
        if not held:
            return 0
        revoked = await self.credentials.revoked(
            [(connection.organization_id, subject) for connection, subject in held]
        )
        closed = 0
        for connection, subject in held:
            if (connection.organization_id, subject) in revoked:
                connection.close(CLOSE_UNAUTHORIZED)
                closed += 1
        if closed:
            log.info("closed %d sockets whose credentials were revoked", closed)
        return closed

    async def _recheck_forever(self) -> None:
        while True:
            await asyncio.sleep(RECHECK_EVERY_SECONDS)
            await self._recheck_once()

    async def _recheck_once(self) -> None:
        try:
            await self.recheck()
            self._recheck_failing = False
        except STORAGE_ERRORS:
            # Logged once per outage: it runs every few seconds.
            if not self._recheck_failing:
                log.warning("checking open sockets' credentials failed", exc_info=True)
                self._recheck_failing = True
        except Exception:
            log.exception("checking open sockets' credentials failed")

    async def _caught_up(self) -> None:
        replayed = await self.hub.catch_up(self.log)
        log.info("broker back: %d stored events replayed to local connections", replayed)
        # Revocations are not stored: the ones said while the broker was down are found.
        await self._recheck_once()

    async def _publish_metrics(self, org_id: int, snapshot: dict[str, Any]) -> None:
        await self._send(Envelope.build(EventType.METRICS_UPDATE, org_id, snapshot))

    async def _agents_online(self, org_id: int) -> int:
        return len(await self.presence.online(org_id))

    async def _presence_changed(self, org_id: int, user_id: int, online: bool) -> None:
        status = "online" if online else "offline"
        await self._send(
            Envelope.build(EventType.AGENT_STATUS, org_id, {"user_id": user_id, "status": status})
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
        await self._send(Envelope.build(EventType.TYPING, session.organization_id, data))

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
        ticket, lifetime = issue_ticket(self.settings.signing_key, principal)
        return {"ticket": ticket, "expires_in": lifetime}

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
        except STORAGE_ERRORS as exc:
            # A clear refusal the client may retry, not a 500.
            log.warning("refusing a handshake: %s", exc.__class__.__name__)
            unavailable = ServiceUnavailable(HANDSHAKE_UNAVAILABLE)
            raise HandshakeRefused(unavailable.code, unavailable.message, status=503) from None
        except ServiceUnavailable as exc:
            raise HandshakeRefused(exc.code, exc.message, exc.details, status=503) from None
        except ApiError as exc:
            # REST's code, words and details; the status stays the documented 403.
            raise HandshakeRefused(exc.code, exc.message, exc.details) from None
        self._organizations[principal.organization_id] = time.monotonic()
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
        now = datetime.now(UTC)
        lapses = claims.credential_expires_at
        if lapses is not None and lapses <= now:
            raise credential_expired_ticket()
        if claims.user_id is None and claims.api_key_id is None:
            raise revoked_ticket()
        if not await self.used_tickets.first_use(claims.ticket_id, claims.expires_at):
            raise used_ticket()
        # A ticket's session lasts as a fresh access token would, and never past the
        # credential it was minted from.
        expires_at = now + timedelta(seconds=self.settings.access_token_ttl)
        if lapses is not None:
            expires_at = min(expires_at, lapses)
        try:
            if claims.user_id is not None:
                principal = await user_principal(
                    self.db,
                    claims.user_id,
                    claims.organization_id,
                    claims.session_epoch,
                    expires_at,
                )
            else:
                assert claims.api_key_id is not None
                found = await api_key_by_id(self.db, claims.api_key_id)
                if found is None or found.organization_id != claims.organization_id:
                    raise revoked_ticket()
                check_scope(found, "api")
                principal = replace(found, expires_at=expires_at)
        except AuthenticationFailed as exc:
            if exc.details.get("reason") == "expired":
                raise credential_expired_ticket() from None
            raise revoked_ticket() from None
        return principal


def _subject_of(connection: Connection) -> Subject | None:
    if connection.subject is None:
        return None
    try:
        return parse_subject(connection.subject)
    except ValueError:
        return None
