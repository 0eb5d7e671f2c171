"""Instagram senders' names, read from the platform once their message is stored.

An Instagram delivery names its sender by an Instagram-scoped id (IGSID) only, so a
first-time sender's contact has no name and their lead is named by that number. The
webhook hands the senders of each stored delivery to ``ProfileFetcher.want``, which
costs a dict look-up and a ``put_nowait``: the delivery is acknowledged without
waiting for the platform. Workers then read the profile
(``connectors.instagram_profile``) with the channel's token and write the name
through the same `outbox.unit_of_work` as REST writes (``contact.updated``,
``lead.updated``).

Only a placeholder name is ever replaced: none, empty, or the IGSID itself. A name an
agent typed stays, and a contact that already has a real name is not looked up at
all. The username goes to ``custom_fields["instagram_username"]`` when that is unset.

Everything here lives in this process: a sender is looked up at most once per
``ttl`` (an in-memory LRU), a want that finds the queue full is dropped with a log
line (the sender's next message asks again), and wants still queued when the
process stops are lost the same way. Sandbox channels never reach the platform.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import httpx
from sqlalchemy import bindparam, or_
from sqlmodel import col, select

from connectors.instagram_profile import Profile, ProfileError, fetch_profile
from connectors.settings import ChannelSettings, InstagramSettings
from connectors.types import InboundEvent, InboundMessage, Reaction

from ..db import Database
from ..events import EventType
from ..models import Channel, Contact, ContactIdentity, Lead, utcnow
from ..views import contact_data, lead_data
from .outbox import EventSink, unit_of_work
from .text import storable_text
from .timers import Timers

log = logging.getLogger("inbox.profiles")

KIND = "instagram"
USERNAME_FIELD = "instagram_username"

MAX_QUEUE = 1000
MAX_CACHED = 10_000
TTL_SECONDS = 24 * 3600.0
WORKERS = 4
MAX_ATTEMPTS = 4
BACKOFF_BASE_SECONDS = 1.0
BACKOFF_CAP_SECONDS = 60.0
# After the attempts ran out on errors that say "later": asked again by a message
# that comes after this, not by every message in the middle of an outage.
RETRY_LATER_SECONDS = 600.0
# The longest Retry-After obeyed: a timer of hours would outlive its use.
MAX_RETRY_AFTER_SECONDS = 300.0
# Drops are logged at most this often, with their count: a flood logs a line a minute.
DROP_LOG_SECONDS = 60.0

# What the columns and the API take (contacts' custom_fields hold at most 100 keys).
_MAX_NAME = 200
_MAX_CUSTOM_FIELDS = 100

_CONTACT = (
    select(Contact)
    .join(ContactIdentity, col(ContactIdentity.contact_id) == col(Contact.id))
    .where(
        col(ContactIdentity.organization_id) == bindparam("org_id"),
        col(ContactIdentity.kind) == KIND,
        col(ContactIdentity.external_id) == bindparam("sender_id"),
    )
)
# Locked: an agent's rename meanwhile either came first (and is kept) or waits for
# the write.
_CONTACT_LOCKED = _CONTACT.with_for_update(of=Contact)


@dataclass(frozen=True, slots=True)
class _Want:
    channel_id: int
    organization_id: int
    sender_id: str
    settings: InstagramSettings
    attempt: int = 1

    @property
    def key(self) -> tuple[int, str]:
        return (self.channel_id, self.sender_id)


def is_placeholder(name: str | None, sender_id: str) -> bool:
    """Whether ``name`` is what a sender is called before anyone knows better."""
    return name is None or not name.strip() or name.strip() == sender_id


def backoff(attempt: int, retry_after: float | None, base: float, cap: float) -> float:
    """Exponential backoff with full jitter; the platform's Retry-After is a floor."""
    delay = random.uniform(0, min(cap, base * 2 ** (attempt - 1)))
    return max(delay, min(retry_after or 0.0, MAX_RETRY_AFTER_SECONDS))


class ProfileFetcher:
    """Looks up Instagram senders' profiles off the webhook path; owned by the app's
    lifespan (``start``, ``close``)."""

    def __init__(
        self,
        db: Database,
        sink: EventSink,
        http: httpx.AsyncClient,
        *,
        base_url: str,
        max_queue: int = MAX_QUEUE,
        max_cached: int = MAX_CACHED,
        ttl: float = TTL_SECONDS,
        workers: int = WORKERS,
        max_attempts: int = MAX_ATTEMPTS,
        backoff_base: float = BACKOFF_BASE_SECONDS,
        backoff_cap: float = BACKOFF_CAP_SECONDS,
        retry_later: float = RETRY_LATER_SECONDS,
    ) -> None:
        self.db = db
        self.sink = sink
        self.http = http
        self.base_url = base_url
        self.max_cached = max_cached
        self.ttl = ttl
        self.workers = workers
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.retry_later = retry_later
        self._queue: asyncio.Queue[_Want] = asyncio.Queue(maxsize=max_queue)
        # (channel id, sender id) -> until when it is not asked for again (monotonic).
        self._seen: OrderedDict[tuple[int, str], float] = OrderedDict()
        self._tasks: list[asyncio.Task[None]] = []
        self._timers = Timers()
        self._closed = False
        self.dropped = 0
        self._dropped_unlogged = 0
        self._drop_logged_at = -DROP_LOG_SECONDS

    @property
    def queued(self) -> int:
        return self._queue.qsize()

    # -- the webhook's side: never waits ---------------------------------------

    def want(
        self, channel: Channel, settings: ChannelSettings, events: Sequence[InboundEvent]
    ) -> None:
        """Look up, later, the senders of a stored delivery to ``channel`` who may
        have no name yet. Returns at once; any channel but a non-sandbox Instagram one
        is ignored."""
        if (
            self._closed
            or not isinstance(settings, InstagramSettings)
            or settings.sandbox
            or channel.id is None
        ):
            return
        now = time.monotonic()
        for event in events:
            # The events that make a contact of their sender.
            if isinstance(event, InboundMessage | Reaction) and event.platform == KIND:
                sender_id = event.sender_id
                # IGSIDs are numbers: anything else has no profile to read.
                if sender_id.isascii() and sender_id.isdigit():
                    self._want(channel.id, channel.organization_id, sender_id, settings, now)

    def _want(
        self, channel_id: int, org_id: int, sender_id: str, settings: InstagramSettings, now: float
    ) -> None:
        key = (channel_id, sender_id)
        until = self._seen.get(key)
        if until is not None:
            if until > now:
                self._seen.move_to_end(key)
                return
            del self._seen[key]
        if self._put(_Want(channel_id, org_id, sender_id, settings)):
            self._remember(key, now + self.ttl)

    def _put(self, want: _Want) -> bool:
        try:
            self._queue.put_nowait(want)
        except asyncio.QueueFull:
            self._dropped(want)
            return False
        return True

    def _dropped(self, want: _Want) -> None:
        self.dropped += 1
        self._dropped_unlogged += 1
        now = time.monotonic()
        if now - self._drop_logged_at >= DROP_LOG_SECONDS:
            log.warning(
                "instagram profiles: queue full (%d waiting); %d look-up(s) dropped, the "
                "last for sender %s on channel %s (asked again by their next message)",
                self._queue.qsize(),
                self._dropped_unlogged,
                want.sender_id,
                want.channel_id,
            )
            self._drop_logged_at = now
            self._dropped_unlogged = 0

    def _remember(self, key: tuple[int, str], until: float) -> None:
        self._seen[key] = until
        self._seen.move_to_end(key)
        while len(self._seen) > self.max_cached:
            self._seen.popitem(last=False)

    def _forget(self, key: tuple[int, str]) -> None:
        self._seen.pop(key, None)

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> None:
        if self._tasks or self._closed:
            return
        self._tasks = [
            asyncio.create_task(self._work(), name=f"instagram-profiles-{n}")
            for n in range(self.workers)
        ]

    async def close(self) -> None:
        """Stop the workers and the retry timers; what is still queued is dropped."""
        self._closed = True
        self._timers.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    # -- the workers ---------------------------------------------------------------

    async def _work(self) -> None:
        while True:
            want = await self._queue.get()
            try:
                await self._look_up(want)
            except asyncio.CancelledError:
                raise
            except Exception:
                # The database, most likely: the sender's next message asks again.
                log.exception(
                    "instagram profiles: sender %s on channel %s failed",
                    want.sender_id,
                    want.channel_id,
                )
                self._forget(want.key)
            finally:
                self._queue.task_done()

    async def _look_up(self, want: _Want) -> None:
        if not await self._unnamed(want):
            return
        try:
            profile = await fetch_profile(self.http, self.base_url, want.settings, want.sender_id)
        except ProfileError as exc:
            self._failed(want, exc)
            return
        await self._apply(want, profile)

    async def _unnamed(self, want: _Want) -> bool:
        """Whether the sender's contact exists and still has no real name."""
        async with self.db.session() as session:
            contact = (
                await session.exec(
                    _CONTACT, params={"org_id": want.organization_id, "sender_id": want.sender_id}
                )
            ).first()
        return contact is not None and is_placeholder(contact.name, want.sender_id)

    def _failed(self, want: _Want, exc: ProfileError) -> None:
        if not exc.retryable:
            # A person who never wrote to the account, or blocked it, or a token the
            # platform refuses: asking again within the TTL would only repeat it.
            log.info(
                "instagram profiles: no profile for sender %s on channel %s: %s",
                want.sender_id,
                want.channel_id,
                exc,
            )
            return
        if want.attempt >= self.max_attempts:
            log.warning(
                "instagram profiles: sender %s on channel %s: giving up after %d attempts: %s",
                want.sender_id,
                want.channel_id,
                want.attempt,
                exc,
            )
            self._remember(want.key, time.monotonic() + self.retry_later)
            return
        delay = backoff(want.attempt, exc.retry_after, self.backoff_base, self.backoff_cap)
        log.info(
            "instagram profiles: sender %s on channel %s: attempt %d failed (%s), "
            "retrying in %.1fs",
            want.sender_id,
            want.channel_id,
            want.attempt,
            exc.code,
            delay,
        )
        self._retry_in(delay, replace(want, attempt=want.attempt + 1))

    def _retry_in(self, delay: float, want: _Want) -> None:
        def due() -> None:
            if not self._put(want):
                self._forget(want.key)

        # A timer, not a sleep: a worker stays free for other senders meanwhile.
        self._timers.later(delay, due)

    async def _apply(self, want: _Want, profile: Profile) -> None:
        """Write what the profile tells where nothing better is known, in one
        transaction with its events."""
        username = _clean(profile.username)
        name = _clean(profile.name) or username
        if name is None:
            return
        async with unit_of_work(self.db, want.organization_id, self.sink) as tx:
            params = {"org_id": want.organization_id, "sender_id": want.sender_id}
            contact = (await tx.session.exec(_CONTACT_LOCKED, params=params)).first()
            if contact is None or contact.id is None:
                return
            changes: dict[str, Any] = {}
            if is_placeholder(contact.name, want.sender_id):
                changes["name"] = name
            fields = dict(contact.custom_fields or {})
            if (
                username is not None
                and not fields.get(USERNAME_FIELD)
                and len(fields) < _MAX_CUSTOM_FIELDS
            ):
                fields[USERNAME_FIELD] = username
                changes["custom_fields"] = fields
            if changes:
                for field, value in changes.items():
                    setattr(contact, field, value)
                contact.updated_at = utcnow()
                tx.session.add(contact)
                await tx.session.flush()
                tx.emit(EventType.CONTACT_UPDATED, contact_data(contact))
            leads = await tx.session.exec(
                select(Lead)
                .where(
                    col(Lead.organization_id) == want.organization_id,
                    col(Lead.contact_id) == contact.id,
                    or_(
                        col(Lead.name).is_(None),
                        col(Lead.name) == "",
                        col(Lead.name) == want.sender_id,
                    ),
                )
                .order_by(col(Lead.id))
                .with_for_update()
            )
            for lead in list(leads):
                lead.name = name
                lead.updated_at = utcnow()
                tx.session.add(lead)
                await tx.session.flush()
                tx.emit(EventType.LEAD_UPDATED, lead_data(lead))


def _clean(text: str | None) -> str | None:
    """``text`` as the database and the API take it, or None when nothing is left."""
    if text is None:
        return None
    cleaned = storable_text(text).strip()[:_MAX_NAME].strip()
    return cleaned or None
