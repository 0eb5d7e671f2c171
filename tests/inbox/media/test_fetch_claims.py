"""Several processes fetch attachments: each file is claimed by one of them."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
from sqlalchemy import update
from sqlmodel import col

from connectors.media import MediaFetchError
from inbox.media.fetcher import MediaFetcher
from inbox.media.inbound import new_media_id
from inbox.media.store import LocalMediaStore
from inbox.models import Media, utcnow
from inbox.services.channel_secrets import ChannelSecrets
from inbox.services.outbox import NullSink


def test_a_pending_file_is_claimed_by_one_worker_only(media_service, media_tenant, tmp_path):
    db = media_service.db
    media = Media(
        id=new_media_id(),
        organization_id=media_tenant.org_id,
        source="inbound",
        platform_ref="1234",
        # Not due: the service's own worker leaves it to the two below.
        next_attempt_at=utcnow() + timedelta(days=1),
    )

    async def race() -> list[Media | None]:
        async with db.session(write=True) as session:
            session.add(media)
            await session.commit()
        async with httpx.AsyncClient() as http:
            workers = [
                MediaFetcher(
                    db, NullSink(), http, LocalMediaStore(tmp_path),
                    ChannelSecrets.from_settings(media_service.settings),
                    remote=http, base_urls={}, max_bytes=1024, request_timeout=5,
                )
                for _ in range(2)
            ]
            return list(await asyncio.gather(*(w._claim(media.id) for w in workers)))

    claims = media_service.run(race())

    assert sorted(c is None for c in claims) == [False, True]
    [claimed] = [c for c in claims if c is not None]
    assert claimed.attempts == 1


def test_a_worker_whose_claim_was_taken_again_records_nothing(
    media_service, media_tenant, tmp_path
):
    db = media_service.db
    media = Media(
        id=new_media_id(),
        organization_id=media_tenant.org_id,
        source="inbound",
        platform_ref="1234",
        next_attempt_at=utcnow() + timedelta(days=1),
    )

    async def slow_then_late() -> tuple[Media | None, Media | None]:
        async with db.session(write=True) as session:
            session.add(media)
            await session.commit()
        async with httpx.AsyncClient() as http:
            worker = MediaFetcher(
                db, NullSink(), http, LocalMediaStore(tmp_path),
                ChannelSecrets.from_settings(media_service.settings),
                remote=http, base_urls={}, max_bytes=1024, request_timeout=5,
            )
            slow = await worker._claim(media.id)
            assert slow is not None
            assert worker.deadline < worker.stale_after.total_seconds()
            # Its claim went stale and another worker took the file.
            async with db.session(write=True) as session:
                await session.exec(
                    update(Media)
                    .where(col(Media.id) == media.id)
                    .values(claimed_at=utcnow() + timedelta(seconds=1))
                )
                await session.commit()
            await worker._failed_attempt(slow, MediaFetchError("gone", retryable=False))
            await worker._failed_attempt(slow, MediaFetchError("later", retryable=True))
            async with db.session() as session:
                return slow, await session.get(Media, media.id)

    _, row = media_service.run(slow_then_late())

    assert row is not None
    assert (row.status, row.error, row.next_attempt_at > utcnow()) == ("pending", None, True)
