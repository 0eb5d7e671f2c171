"""The realtime side of one process, composed: outbox, broker, hub, presence, live
figures, typing, revocation and ``/ws``.

Committed events come in through ``publish`` (the outbox's sink), go to the
broker once, serialized once, and come back to every process's hub, which
fans them out to that process's WebSockets. Instructions (revocations) travel on
the broker's control channel and never reach a client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Any

import orjson
from redis.exceptions import RedisError

from realtime.broker import Broker, BrokerUnavailable, create_backend
from realtime.control import Control
from realtime.endpoint import RealtimeEndpoint
from realtime.envelope import Envelope
from realtime.hub import Hub
from realtime.origins import OriginPolicy
from realtime.presence import create_presence

from ..auth import Authenticator, Principal
from ..db import Database
from ..errors import ServiceUnavailable
from ..events import EventType
from ..services.metrics import METRIC_EVENTS, LiveMetrics
from ..services.outbox import OutboxEvent
from ..settings import Settings
from ..telemetry.metrics import EVENTS_PUBLISHED
from .asyncapi import EVENT_TYPES
from .handshake import Handshake
from .outbox_log import OutboxLog, envelope_of
from .revocation import CredentialCheck
from .revoker import REVOKED, Revoker
from .sender import Sender
from .typists import Typists

log = logging.getLogger("inbox.live")

CHANNEL_PREFIX = "inbox"


class Live:
    def __init__(self, settings: Settings, db: Database, auth: Authenticator) -> None:
        self.settings = settings
        self.outbox = OutboxLog(db, settings.event_retention_days)
        self.hub = Hub(fill_gaps_from=self.outbox)
        self.broker = Broker(
            create_backend(settings.redis_url, prefix=CHANNEL_PREFIX),
            on_event=self._received,
            on_control=self._instructed,
            on_reconnected=self._caught_up,
        )
        self.presence = create_presence(
            settings.redis_url, self._presence_changed, prefix=CHANNEL_PREFIX
        )
        self.sender = Sender(self.broker)
        # Told of each commit's events once published, by the organizations they are
        # of (the outgoing webhooks' sender).
        self.committed: list[Callable[[frozenset[int]], None]] = []
        self.metrics = LiveMetrics(db, self._publish_metrics, self._agents_online)
        credentials = CredentialCheck(db, access_token_ttl=settings.access_token_ttl)
        self.revoker = Revoker(self.hub, auth, credentials, self.sender.instruct)
        self.handshake = Handshake(
            settings, db, auth, admitted=self.revoker.watch, hub=self.hub
        )
        self.typists = Typists(db, self.sender.send)
        self.viewers = Typists(db, self.sender.send, EventType.VIEWING)
        self.endpoint = RealtimeEndpoint(
            hub=self.hub,
            event_log=self.outbox,
            authenticate=self.handshake,
            origin_allowed=OriginPolicy(tuple(settings.allowed_origins), settings.public_url),
            on_typing=self.typists,
            on_viewing=self.viewers,
            presence=self.presence,
            event_types=EVENT_TYPES,
            direct_frames=settings.ws_direct_frames,
        )
        self._tasks: list[asyncio.Task[None]] = []
        # (organization, user) of the connected users who said they are away. Every
        # process learns it from the agent.status events that say so, which go to all.
        self._away: set[tuple[int, int]] = set()

    async def start(self) -> None:
        await self.broker.start()
        await self.presence.start()
        self._tasks = [
            asyncio.create_task(self.outbox.prune_forever(), name="outbox-retention"),
            asyncio.create_task(self.revoker.recheck_forever(), name="credential-check"),
        ]

    async def stop(self) -> None:
        await self.hub.close_all()
        for task in self._tasks:
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

    def ticket_for(self, principal: Principal) -> dict[str, Any]:
        return self.handshake.ticket_for(principal)

    async def revoke_user(
        self,
        org_id: int,
        user_id: int,
        epoch: int,
        keys: Sequence[int] = (),
        keep_session: int | None = None,
        keep_family: int | None = None,
    ) -> None:
        """Close, in every process, the sockets opened with a session of the user older
        than ``epoch``, and those of ``keys`` (the keys that stopped with the user); not
        those of the console session ``keep_session`` nor of the refresh family
        ``keep_family``, which stay signed in."""
        await self.revoker.revoke_user(org_id, user_id, epoch, keys, keep_session, keep_family)

    async def revoke_key(self, org_id: int, api_key_id: int) -> None:
        """Close, in every process, the sockets a deleted key opened; stop trusting it."""
        await self.revoker.revoke_key(org_id, api_key_id)

    async def revoke_session(self, org_id: int, user_id: int, session_id: int) -> None:
        """Close, in every process, the sockets a console session opened; stop trusting
        the session: it was signed out."""
        await self.revoker.revoke_session(org_id, user_id, session_id)

    async def revoke_family(self, org_id: int, user_id: int, family_id: int) -> None:
        """Close, in every process, the sockets an API client's session (a refresh
        family) opened: it was signed out, or one of its refresh tokens reused."""
        await self.revoker.revoke_family(org_id, user_id, family_id)

    async def recheck(self) -> int:
        """Close the local sockets whose credential the database no longer stands behind."""
        return await self.revoker.recheck()

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
        await self.sender.send(*envelopes)
        EVENTS_PUBLISHED.inc(len(envelopes))
        if self.committed:
            organizations = frozenset(e.organization_id for e in events)
            for listener in self.committed:
                listener(organizations)
        for org_id in {e.organization_id for e in events if e.type in METRIC_EVENTS}:
            self.metrics.touch(org_id)

    # -- the receiving end of the broker ---------------------------------------------

    def _received(self, envelope: Envelope) -> None:
        if envelope.type == EventType.AGENT_STATUS:
            self._note_status(envelope)
        if envelope.type == REVOKED:
            # A revocation as a process of the previous release sends it, as an event:
            # carried out like an instruction, never handed to a client.
            self._received_as_event(envelope)
            return
        if envelope.type == EventType.CONTACT_DELETED:
            # Its conversations went with it; which ones, the event does not say.
            self.typists.conversations.forget_organization(envelope.organization_id)
            self.viewers.conversations.forget_organization(envelope.organization_id)
        self.hub.dispatch(envelope)

    def _instructed(self, control: Control) -> None:
        self.revoker.instructed(control)

    def _received_as_event(self, envelope: Envelope) -> None:
        try:
            data = orjson.loads(envelope.frame)["data"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            log.warning("ignoring a malformed %s event", REVOKED)
            return
        self.revoker.instructed(Control(REVOKED, envelope.organization_id, data))

    async def _caught_up(self) -> None:
        replayed = await self.hub.catch_up(self.outbox)
        log.info("broker back: %d stored events replayed to local connections", replayed)
        # Instructions are not stored: the revocations said while the broker was down
        # are found in the database.
        await self.revoker.recheck_once()

    # -- presence and live figures ---------------------------------------------------

    async def _publish_metrics(self, org_id: int, snapshot: dict[str, Any]) -> None:
        await self.sender.send(Envelope.build(EventType.METRICS_UPDATE, org_id, snapshot))

    async def _agents_online(self, org_id: int) -> int:
        # As the agents table and the team list say it: connected, and not away.
        online = await self.presence.online(org_id)
        return sum(1 for user_id in online if (org_id, user_id) not in self._away)

    async def set_status(self, org_id: int, user_id: int, status: str) -> None:
        """A user's own choice, "online" or "away", told to every console."""
        if status == "away":
            self._away.add((org_id, user_id))
        else:
            self._away.discard((org_id, user_id))
        await self.sender.send(
            Envelope.build(EventType.AGENT_STATUS, org_id, {"user_id": user_id, "status": status})
        )
        self.metrics.touch(org_id)

    async def statuses(self, org_id: int) -> dict[int, str]:
        """"online" or "away" for each user of the organization with an open socket."""
        online = await self.presence.online(org_id)
        return {u: "away" if (org_id, u) in self._away else "online" for u in online}

    def _note_status(self, envelope: Envelope) -> None:
        try:
            data = orjson.loads(envelope.frame)["data"]
            key = (envelope.organization_id, int(data["user_id"]))
            status = data["status"]
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            log.warning("ignoring a malformed %s event", envelope.type)
            return
        if status == "away":
            self._away.add(key)
        else:
            # Back, or gone: whoever connects again starts online.
            self._away.discard(key)

    async def _presence_changed(self, org_id: int, user_id: int, online: bool) -> None:
        status = "online" if online else "offline"
        await self.sender.send(
            Envelope.build(EventType.AGENT_STATUS, org_id, {"user_id": user_id, "status": status})
        )
        self.metrics.touch(org_id)
