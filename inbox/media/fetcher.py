"""The fetch worker: reads inbound attachments from their platforms, after the
webhook that announced them has been answered, and keeps them in the media store.

Each process runs one. A row is claimed by a conditional update before its platform
is called, so two workers never read the same file; a claim older than
``stale_after`` belongs to a process that died and is taken again. A read is given up
at ``deadline``, well before that, and an outcome is written only by the worker still
holding the claim, so a slow read retaken elsewhere is never recorded twice. A failure is
retried with backoff, then the attachment is marked failed: the message itself never
fails. Either outcome is written onto the message's attachment and told to the
consoles with ``message.updated``."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
from datetime import timedelta

import httpx
from sqlalchemy import or_, update
from sqlmodel import col, select

from connectors import sandbox
from connectors.media import MediaFetchError, fetch_media

from ..db import Database
from ..models import Channel, Media, utcnow
from ..services.channel_secrets import ChannelSecrets, SecretsKeyError
from ..services.outbox import EventSink
from .attachments import record_outcome
from .sniff import GENERIC, sniff
from .store import MediaStore

log = logging.getLogger("inbox.media")

BATCH = 20
IDLE_POLL_SECONDS = 1.0
MAX_ATTEMPTS = 6
BACKOFF_BASE_SECONDS = 1.0
BACKOFF_CAP_SECONDS = 600.0


class MediaFetcher:
    def __init__(
        self,
        db: Database,
        sink: EventSink,
        http: httpx.AsyncClient,
        store: MediaStore,
        secrets: ChannelSecrets,
        *,
        remote: httpx.AsyncClient,
        base_urls: dict[str, str],
        max_bytes: int,
        request_timeout: float,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        self.db = db
        self.sink = sink
        self.http = http
        # The URLs platforms name are read through a guarded client (safe_urls).
        self.remote = remote
        self.store = store
        self.secrets = secrets
        self.base_urls = base_urls
        self.max_bytes = max_bytes
        self.max_attempts = max_attempts
        # Long enough for the largest file at a slow pace; a claim is taken again only
        # once its read has surely been given up.
        self.deadline = request_timeout * 4 + 30
        self.stale_after = timedelta(seconds=self.deadline + 30)
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Attachments were stored: look now rather than at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        while True:
            self._wake.clear()
            try:
                while await self.fetch_due() == BATCH:
                    pass
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("fetching media failed; trying again")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), IDLE_POLL_SECONDS)

    async def fetch_due(self) -> int:
        """Fetch what is due now; answer how many rows were due."""
        now = utcnow()
        async with self.db.session() as session:
            due = list(
                await session.exec(
                    select(Media.id)
                    .where(
                        col(Media.status) == "pending",
                        col(Media.source) == "inbound",
                        or_(
                            col(Media.next_attempt_at).is_(None), col(Media.next_attempt_at) <= now
                        ),
                        or_(
                            col(Media.claimed_at).is_(None),
                            col(Media.claimed_at) < now - self.stale_after,
                        ),
                    )
                    .order_by(col(Media.next_attempt_at))
                    .limit(BATCH)
                )
            )
        for media_id in due:
            media = await self._claim(media_id)
            if media is not None:
                await self._fetch(media)
        return len(due)

    async def _claim(self, media_id: str) -> Media | None:
        now = utcnow()
        async with self.db.session() as session:
            result = await session.exec(
                update(Media)
                .where(
                    col(Media.id) == media_id,
                    col(Media.status) == "pending",
                    or_(
                        col(Media.claimed_at).is_(None),
                        col(Media.claimed_at) < now - self.stale_after,
                    ),
                )
                .values(claimed_at=now, attempts=col(Media.attempts) + 1)
            )
            await session.commit()
            if result.rowcount != 1:
                return None  # another worker took it
            return await session.get(Media, media_id)

    async def _fetch(self, media: Media) -> None:
        try:
            data, declared = await self._read(media)
        except MediaFetchError as exc:
            await self._failed_attempt(media, exc)
            return
        except Exception as exc:
            log.exception("fetching media %s failed unexpectedly", media.id)
            await self._failed_attempt(
                media, MediaFetchError(str(exc) or type(exc).__name__, retryable=False)
            )
            return
        content_type = sniff(data)
        if content_type == GENERIC and declared:
            # Bytes this module does not know: the platform's word, never to be shown
            # inline unless the bytes said so (serving decides from this type).
            content_type = declared.split(";", 1)[0].strip().lower() or GENERIC
        key = await self.store.put(data, organization_id=media.organization_id)
        recorded = await record_outcome(
            self.db,
            self.sink,
            media,
            {
                "status": "stored",
                "storage_key": key,
                "content_type": content_type,
                "size": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
                "error": None,
            },
        )
        if not recorded:
            await self.store.delete(key)

    async def _read(self, media: Media) -> tuple[bytes, str | None]:
        async with self.db.session() as session:
            channel = await session.get(Channel, media.channel_id)
        if channel is None or not media.platform_ref:
            raise MediaFetchError("the attachment's channel is gone", retryable=False)
        try:
            settings = self.secrets.open(channel)
        except SecretsKeyError as exc:
            raise MediaFetchError(exc.message, retryable=True, code="secrets_key") from None
        if sandbox.is_sandbox(settings):
            raise MediaFetchError(
                "a sandbox channel's attachments have no bytes", retryable=False, code="sandbox"
            )
        try:
            async with asyncio.timeout(self.deadline):
                fetched = await fetch_media(
                    self.http,
                    self.base_urls.get(channel.kind, ""),
                    settings,
                    media.platform_ref,
                    max_bytes=self.max_bytes,
                    remote=self.remote,
                )
        except TimeoutError:
            raise MediaFetchError(
                f"the file was not read in {self.deadline:.0f} s", retryable=True, code="timeout"
            ) from None
        return fetched.data, fetched.content_type or media.content_type

    async def _failed_attempt(self, media: Media, error: MediaFetchError) -> None:
        if error.retryable and media.attempts < self.max_attempts:
            delay = max(
                random.uniform(
                    BACKOFF_BASE_SECONDS / 2,
                    min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** (media.attempts - 1)),
                ),
                error.retry_after or 0.0,
            )
            log.info(
                "media %s: attempt %d failed (%s), retrying in %.1fs",
                media.id,
                media.attempts,
                error.code,
                delay,
            )
            async with self.db.session() as session:
                await session.exec(
                    update(Media)
                    .where(col(Media.id) == media.id, col(Media.claimed_at) == media.claimed_at)
                    .values(
                        claimed_at=None,
                        next_attempt_at=utcnow() + timedelta(seconds=delay),
                        error=error.message,
                        updated_at=utcnow(),
                    )
                )
                await session.commit()
            return
        log.info("media %s: not fetched (%s): %s", media.id, error.code, error.message)
        await record_outcome(
            self.db, self.sink, media, {"status": "failed", "error": error.message}
        )
