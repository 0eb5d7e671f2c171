"""A reply being sent is taken for a dead process's only once it has run longer than any
live attempt can: a customer's callback may take the webhook timeout, longer than a
platform's API is given."""

from __future__ import annotations

import httpx

from inbox.services.channel_secrets import ChannelSecrets
from inbox.services.delivery import DeliveryWorker


async def test_an_attempt_is_stale_only_past_the_longest_timeout(service):
    async with httpx.AsyncClient() as http:
        worker = DeliveryWorker(
            service.db, None, http, base_urls={}, max_attempts=3, request_timeout=10,  # type: ignore[arg-type]
            secrets=ChannelSecrets.from_settings(service.settings),
        )
        assert worker.stale_after.total_seconds() > 10
        worker.callbacks_through(http, [1.0], timeout=120)
        assert worker.stale_after.total_seconds() > 120
        worker.callbacks_through(http, [1.0], timeout=1)
        assert worker.stale_after.total_seconds() > 10
