"""`InboxClient.events()` against a real `inbox serve`: it resumes by itself, so every
event reaches the caller once, in order, whatever happens to the connection."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re

import pytest
from inbox_client import Backoff, Event, InboxClient, InboxError, ReplayTruncated

from inbox.db import Database
from inbox.services.leads import add_lead
from inbox.services.outbox import NullSink, unit_of_work
from inbox.settings import async_database_url
from tests.clients.helpers import until

# Quick retries: the server is back within a second or two.
QUICK = Backoff(base=0.05, cap=0.5)


async def store_leads_directly(server, names: list[str]) -> None:
    """Leads stored while the server is down, by another writer of its database."""
    db = Database(async_database_url(server.env["INBOX_DATABASE_URL"]))
    try:
        for name in names:
            async with unit_of_work(db, server.org_id, NullSink()) as tx:
                await add_lead(tx, name=name)
    finally:
        await db.dispose()


async def test_events_made_while_the_server_restarts_arrive_once_each_in_order(inbox_server):
    received: list[Event] = []
    async with InboxClient(inbox_server.url, api_key=inbox_server.api_key, backoff=QUICK) as inbox:

        async def consume() -> None:
            async for event in inbox.events(types=["lead.created"]):
                received.append(event)

        consumer = asyncio.create_task(consume())
        try:
            # Connected: the stream knows where "now" is.
            await until(lambda: inbox.last_event_id is not None)
            await inbox.create_lead({"name": "before the restart"})
            await until(lambda: len(received) == 1)

            await asyncio.to_thread(inbox_server.stop)
            await store_leads_directly(inbox_server, ["while down 1", "while down 2"])
            await asyncio.to_thread(inbox_server.start)
            await inbox.create_lead({"name": "right after the restart"})
            await until(lambda: len(received) >= 4)
            await inbox.create_lead({"name": "later on"})
            await until(lambda: len(received) >= 5)
        finally:
            consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await consumer

    assert [e["data"]["name"] for e in received] == [
        "before the restart",
        "while down 1",
        "while down 2",
        "right after the restart",
        "later on",
    ]
    ids = [e["id"] for e in received]
    assert ids == sorted(set(ids))
    assert inbox.last_event_id == ids[-1]


# Lead notes of this size make each lead.updated frame about 20 KB: a reader that stops
# is cut off (about 1 MiB waiting for it, past the kernel's buffers) in far fewer frames.
NOTES = "n" * 19_000
AT_MOST = 600


def evictions(server) -> float:
    """Sockets the service has cut off for reading too slowly, from its metrics."""
    with server.api(server.admin) as api:
        text = api.get("/metrics").text
    return sum(float(n) for n in re.findall(r"^realtime_evictions_total\{[^}]*\} (\S+)$",
                                            text, re.MULTILINE))


async def test_a_stream_cut_off_for_reading_too_slowly_resumes_without_gap_or_repeat(
    inbox_server, caplog
):
    caplog.set_level(logging.INFO, logger="inbox_client")
    received: list[Event] = []
    reading = asyncio.Event()
    async with InboxClient(inbox_server.url, api_key=inbox_server.api_key, backoff=QUICK) as inbox:
        lead = await inbox.create_lead({"name": "Updated a lot"})

        async def consume() -> None:
            async for event in inbox.events(types=["lead.updated"]):
                received.append(event)
                # The caller stops taking events after the first, as a stuck one would.
                await reading.wait()

        consumer = asyncio.create_task(consume())
        try:
            await until(lambda: inbox.last_event_id is not None)
            before = await asyncio.to_thread(evictions, inbox_server)
            written = 0
            while written < AT_MOST:
                for _ in range(20):
                    await inbox.update_lead(lead["id"], {"notes": f"{written:05d} {NOTES}"})
                    written += 1
                if await asyncio.to_thread(evictions, inbox_server) > before:
                    break
            assert await asyncio.to_thread(evictions, inbox_server) > before, (
                f"not cut off after {written} events")
            # Closed with 4008; the client resumes from the last event it handed over.
            reading.set()
            await inbox.update_lead(lead["id"], {"notes": "done"})
            await until(lambda: bool(received) and received[-1]["data"]["notes"] == "done",
                        timeout=60)
        finally:
            consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await consumer

    assert any("4008" in r.getMessage() for r in caplog.records if r.name == "inbox_client")
    notes = [event["data"]["notes"].split(" ")[0] for event in received]
    assert notes == [f"{n:05d}" for n in range(written)] + ["done"]
    ids = [event["id"] for event in received]
    assert ids == sorted(set(ids))
    assert inbox.last_event_id == ids[-1]


async def test_a_stream_resumes_from_the_id_a_caller_kept(inbox_server):
    async with InboxClient(inbox_server.url, api_key=inbox_server.api_key) as inbox:
        first = await inbox.create_lead({"name": "kept 1"})
        second = await inbox.create_lead({"name": "kept 2"})
        # From before both: the replay brings them, then the stream would go on live.
        position_after: dict[int, int | None] = {}
        stream = inbox.events(types=["lead.created"], last_event_id=0)
        async for event in stream:
            position_after[event["data"]["id"]] = inbox.last_event_id
            if event["data"]["id"] == second["id"]:
                break
        await stream.aclose()
        assert list(position_after)[-2:] == [first["id"], second["id"]]

        again = inbox.events(types=["lead.created"], last_event_id=position_after[first["id"]])
        event = await anext(again)
        await again.aclose()
        assert event["data"]["id"] == second["id"]
        assert inbox.last_event_id == event["id"] == position_after[second["id"]]


async def test_a_position_the_service_no_longer_has_raises_replay_truncated(inbox_server):
    async with InboxClient(inbox_server.url, api_key=inbox_server.api_key) as inbox:
        with pytest.raises(ReplayTruncated) as truncated:
            async for _ in inbox.events(last_event_id=10**9):
                pass
        assert truncated.value.code == "REPLAY_TRUNCATED"
        assert truncated.value.last_event_id == 10**9


async def test_an_unknown_event_type_is_refused_at_once(inbox_server):
    async with InboxClient(inbox_server.url, api_key=inbox_server.api_key) as inbox:
        with pytest.raises(InboxError) as refused:
            async for _ in inbox.events(types=["lead.created", "lead.exploded"]):
                pass
        assert refused.value.code == "UNKNOWN_EVENT_TYPE"
        assert "lead.exploded" in refused.value.message


async def test_a_key_revoked_while_streaming_ends_the_stream_with_an_error(inbox_server):
    key_id, key = inbox_server.make_api_key(role="viewer")
    async with InboxClient(inbox_server.url, api_key=key, backoff=QUICK) as inbox:

        async def consume() -> None:
            async for _ in inbox.events():
                pass

        consumer = asyncio.create_task(consume())
        await until(lambda: inbox.last_event_id is not None)
        with inbox_server.api(inbox_server.admin) as admin:
            assert admin.delete(f"/api/api-keys/{key_id}").status_code == 204
        with pytest.raises(InboxError) as ended:
            await asyncio.wait_for(consumer, timeout=20)
    # Told by the socket's close code (4401), without a reconnect that would be refused.
    assert ended.value.code == "AUTHENTICATION_FAILED" and "4401" in ended.value.message


def test_backoff_waits_a_random_time_up_to_a_doubling_capped_bound():
    backoff = Backoff(base=0.5, cap=4.0)
    for failures, bound in ((0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (10, 4.0), (500, 4.0)):
        delays = [backoff.delay(failures) for _ in range(200)]
        assert all(0 <= d <= bound for d in delays)
        assert max(delays) > bound / 2  # spread over the range, not fixed
