"""The delivery worker: sends queued replies through their channel's platform.

Each attempt is recorded (``attempt_started_at``) and committed before the
platform is called, so two workers never send the same message and a message
whose attempt was cut short by a crash is never sent again: it is marked
``failed`` with code ``interrupted`` for an agent to look at. What is left to
the platform: a request that timed out or got a 5xx may still have been
accepted; its retry can then deliver a second copy, since none of the three
platforms takes an idempotency key on sends.

A channel whose settings say ``sandbox`` is sent through the built-in sandbox
(``connectors.sandbox``) instead of its platform, and never touches the network; the
sandbox's delivery reports are then played back by ``SandboxReports``.

Recording ``sent`` is also what makes a reply its conversation's first response:
a reply that fails never counts.

Replies are sent one channel at a time per lane, channels side by side
(``delivery_lanes``): a slow receiver holds up only its own channel. A platform id
that another message of the channel holds already is not kept (a warning says so):
the reply is still ``sent``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import col, select

from connectors import sandbox
from connectors.registry import adapter_for
from connectors.settings import ChannelSettings
from connectors.types import OutboundMessage, SendError, SendResult

from ..db import Database
from ..media.links import MediaLinks, outbound_attachments
from ..models import Channel, Contact, ContactIdentity, Conversation, Message, utcnow
from ..telemetry.metrics import sending
from .channel_secrets import ChannelSecrets, SecretsKeyError
from .delivery_lanes import Lanes
from .message_status import apply_pending, late_statuses, move_status
from .outbound import record_first_response
from .outbox import EventSink, unit_of_work
from .sandbox import SandboxReports
from .webhooks.schedule import retry_delay

log = logging.getLogger("inbox.delivery")

IDLE_POLL_SECONDS = 1.0
# How often statuses that came before their send was recorded are looked for.
LATE_STATUS_SWEEP_SECONDS = 5.0
# How long the outcome of a send is tried again when the database refuses to record
# it (a lock held, a deadlock, a restart): well within the time after which an
# attempt without an outcome is taken for interrupted.
RECORD_RETRY_SECONDS = 20.0
RECORD_RETRY_FIRST_SECONDS = 0.1
BACKOFF_BASE_SECONDS = 1.0
BACKOFF_CAP_SECONDS = 300.0


def backoff(attempt: int, retry_after: float | None) -> float:
    """Exponential backoff with full jitter; the platform's Retry-After is a floor."""
    delay = random.uniform(0, min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** (attempt - 1)))
    return max(delay, retry_after or 0.0)


class DeliveryWorker:
    def __init__(
        self,
        db: Database,
        sink: EventSink,
        http: httpx.AsyncClient,
        *,
        base_urls: dict[str, str],
        max_attempts: int,
        request_timeout: float,
        public_url: str | None = None,
        sandbox_reports: SandboxReports | None = None,
        secrets: ChannelSecrets,
    ) -> None:
        self.db = db
        self.secrets = secrets
        self.sink = sink
        self.http = http
        self.base_urls = base_urls
        self.max_attempts = max_attempts
        self.public_url = public_url
        # Without it, sandbox sends are still accepted but never reported delivered.
        self.sandbox_reports = sandbox_reports
        # An attempt older than this without an outcome belongs to a process that died.
        # Callbacks are bounded by the webhook timeout instead: see `callbacks_through`.
        self.request_timeout = request_timeout
        self.stale_after = timedelta(seconds=request_timeout * 2 + 30)
        self._wake = asyncio.Event()
        self.lanes = Lanes(db, self._attempt, self.wake)
        # Signs the links a platform fetches an agent's attachments from.
        self.media_links: MediaLinks | None = None
        # Generic channels post to their owner's callback_url: a customer's URL, reached
        # through a guarded client and retried on the outgoing webhooks' schedule.
        self.callback_http: httpx.AsyncClient | None = None
        self.callback_schedule: list[float] | None = None

    def callbacks_through(
        self, client: httpx.AsyncClient, schedule: list[float], timeout: float
    ) -> None:
        """Generic channels post to their owner's callback_url: a customer's URL, reached
        through a guarded client bounded by ``timeout`` and retried on ``schedule``. An
        attempt still running is not taken for a dead process's while it may be alive."""
        self.callback_http = client
        self.callback_schedule = schedule
        longest = max(self.request_timeout, timeout)
        self.stale_after = timedelta(seconds=longest * 2 + 30)

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        swept = 0.0
        try:
            while True:
                # Cleared before the pass: a wake during it brings the next one.
                self._wake.clear()
                try:
                    await self.fail_interrupted()
                    await self.lanes.start_due()
                    if time.monotonic() - swept >= LATE_STATUS_SWEEP_SECONDS:
                        swept = time.monotonic()
                        await self.apply_late_statuses()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("delivery pass failed; retrying")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), IDLE_POLL_SECONDS)
        finally:
            await self.lanes.close()

    async def apply_late_statuses(self) -> int:
        """Apply statuses kept for a platform id that a send has recorded since; answer
        for how many messages."""
        async with self.db.session() as session:
            late = await late_statuses(session)
        for channel_id, external_id, message_id, organization_id in late:
            async with unit_of_work(self.db, organization_id, self.sink) as tx:
                await apply_pending(tx, message_id, channel_id, external_id)
        return len(late)

    async def fail_interrupted(self) -> None:
        cutoff = utcnow() - self.stale_after
        async with self.db.session() as session:
            stale = list(
                await session.exec(
                    select(Message).where(
                        col(Message.status) == "queued",
                        col(Message.attempt_started_at).is_not(None),
                        col(Message.attempt_started_at) < cutoff,
                    )
                )
            )
        for message in stale:
            if message.id is None or self.lanes.under_way(message.id):
                continue  # slow, not dead: this process is sending it
            await self._finish(
                message,
                {
                    "status": "failed",
                    "error_code": "interrupted",
                    "error": "The service stopped while sending; it may or may not have "
                    "reached the recipient, so it is not sent again.",
                },
            )

    async def _attempt(self, message_id: int) -> bool:
        claimed = await self._claim(message_id)
        if claimed is None:
            return False
        await self._deliver(claimed)
        return True

    async def _claim(self, message_id: int) -> Message | None:
        async with self.db.session() as session:
            result = await session.exec(
                update(Message)
                .where(
                    col(Message.id) == message_id,
                    col(Message.status) == "queued",
                    col(Message.attempt_started_at).is_(None),
                )
                .values(attempt_started_at=utcnow(), attempts=col(Message.attempts) + 1)
            )
            await session.commit()
            if result.rowcount != 1:
                return None  # another worker took it
            return await session.get(Message, message_id)

    def _settings(self, channel: Channel) -> ChannelSettings:
        try:
            return self.secrets.open(channel)
        except SecretsKeyError as exc:
            # The key is the operator's to fix: the message waits for it, with backoff,
            # instead of failing at once.
            raise SendError(exc.message, retryable=True, code="secrets_key") from None

    async def _deliver(self, message: Message) -> None:
        kind: str | None = None
        try:
            channel, outbound = await self._prepare(message)
            kind = channel.kind
            settings = self._settings(channel)
            result = await self._send(channel, settings, outbound)
        except SendError as exc:
            await self._failed_attempt(message, exc, kind)
            return
        except Exception as exc:
            log.exception("sending message %s failed unexpectedly", message.id)
            await self._failed_attempt(
                message, SendError(str(exc) or type(exc).__name__, retryable=False, code="internal")
            )
            return
        sent = await self._finish(
            message,
            {
                "status": "sent",
                "external_id": result.external_id,
                "error_code": None,
                "error": None,
            },
        )
        if sent and self.sandbox_reports is not None and sandbox.is_sandbox(settings):
            self.sandbox_reports.schedule(
                channel, sandbox.reports(settings, outbound, result, utcnow())
            )

    async def _send(
        self, channel: Channel, settings: ChannelSettings, outbound: OutboundMessage
    ) -> SendResult:
        if sandbox.is_sandbox(settings):
            return await sandbox.send(settings, outbound)
        adapter = adapter_for(channel.kind)
        base_url = self.base_urls.get(channel.kind, "")
        guarded = channel.kind == "generic" and self.callback_http is not None
        client = self.callback_http if guarded and self.callback_http else self.http
        with sending(channel.kind):
            return await adapter.send(client, base_url, settings, outbound)

    async def _prepare(self, message: Message) -> tuple[Channel, OutboundMessage]:
        async with self.db.session() as session:
            channel = await session.get(Channel, message.channel_id)
            conv = await session.get(Conversation, message.conversation_id)
            assert channel is not None and conv is not None
            if not channel.is_active:
                raise SendError(
                    "The channel is deactivated", retryable=False, code="channel_inactive"
                )
            if channel.health == "disabled":
                # The platform said it refuses this account: retrying only delays the news.
                raise SendError(
                    channel.health_reason or "The platform disabled this channel's account",
                    retryable=False,
                    code="channel_disabled",
                )
            recipient = (
                await session.exec(
                    select(ContactIdentity.external_id)
                    .where(
                        col(ContactIdentity.contact_id) == conv.contact_id,
                        col(ContactIdentity.kind) == channel.kind,
                    )
                    .order_by(col(ContactIdentity.id).desc())
                )
            ).first()
            if recipient is None and channel.kind in ("whatsapp", "sms"):
                contact = await session.get(Contact, conv.contact_id)
                if contact is not None and contact.phone:
                    recipient = (
                        contact.phone.lstrip("+") if channel.kind == "whatsapp" else contact.phone
                    )
        if recipient is None and channel.kind == "generic":
            recipient = f"contact:{conv.contact_id}"  # the callback's owner knows them so
        if recipient is None:
            raise SendError(
                f"The contact has no {channel.kind} identity to send to",
                retryable=False,
                code="no_recipient",
            )
        # Twilio reports delivery only to a URL named with each send.
        callback = (
            f"{self.public_url}/webhooks/twilio/status"
            if self.public_url and channel.kind == "sms"
            else None
        )
        return channel, OutboundMessage(
            to=recipient,
            text=message.content or "",
            attachments=outbound_attachments(message.attachments, self.media_links),
            status_callback=callback,
            message_id=message.id,
            conversation_id=message.conversation_id,
            template=message.platform_data.get("template")
            if message.content_type == "template"
            else None,
        )

    async def _failed_attempt(
        self, message: Message, error: SendError, kind: str | None = None
    ) -> None:
        delay: float | None = None
        if kind == "generic" and self.callback_schedule is not None:
            if error.retryable:
                delay = retry_delay(self.callback_schedule, message.attempts, error.retry_after)
        elif error.retryable and message.attempts < self.max_attempts:
            delay = backoff(message.attempts, error.retry_after)
        if delay is not None:
            log.info(
                "message %s: attempt %d failed (%s), retrying in %.1fs",
                message.id,
                message.attempts,
                error.code,
                delay,
            )
            async with self.db.session() as session:
                await session.exec(
                    update(Message)
                    .where(col(Message.id) == message.id)
                    .values(
                        attempt_started_at=None,
                        next_attempt_at=utcnow() + timedelta(seconds=delay),
                        error_code=error.code,
                        error=error.message,
                    )
                )
                await session.commit()
            return
        await self._finish(
            message, {"status": "failed", "error_code": error.code, "error": error.message}
        )

    async def _finish(self, message: Message, changes: dict[str, Any]) -> bool:
        """Record the outcome of an attempt; answer whether the status moved.

        The message went out (or failed) whatever the database says now: a write that
        loses a deadlock or times out is tried again for a while, so that a message the
        platform took is not later called interrupted."""
        delay = RECORD_RETRY_FIRST_SECONDS
        deadline = time.monotonic() + RECORD_RETRY_SECONDS
        while True:
            try:
                return await self._record(message, changes)
            except IntegrityError:
                if not changes.get("external_id"):
                    raise
                log.warning(
                    "message %s: another message of channel %s holds the platform id the "
                    "send answered; the reply keeps none",
                    message.id,
                    message.channel_id,
                )
                changes = {**changes, "external_id": None}
            except OperationalError as exc:
                if time.monotonic() + delay > deadline:
                    raise
                log.warning(
                    "recording the outcome of message %s failed (%s); trying again",
                    message.id,
                    str(exc).splitlines()[0],
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def _record(self, message: Message, changes: dict[str, Any]) -> bool:
        now = utcnow()
        changes = {**changes, "attempt_started_at": None, "updated_at": now}
        message_id = message.id
        assert message_id is not None, "a message is stored before it is sent"
        async with unit_of_work(self.db, message.organization_id, self.sink) as tx:
            moved = await move_status(tx, message_id, changes)
            if moved and changes["status"] == "sent":
                await record_first_response(tx, message, now)
                # Its statuses may have come before the platform's answer did.
                if changes["external_id"]:
                    await apply_pending(tx, message_id, message.channel_id, changes["external_id"])
        return moved
