"""One client that stops reading is cut off; it never holds back the others."""

from __future__ import annotations

import asyncio
from typing import Any

from inbox.services.outbox import unit_of_work
from tests.inbox.live.wsclient import (
    live_of,
    on_loop,
    open_ws,
    parse_stream,
    read_to_end,
    ready,
    receive,
    stuck_socket,
)

READERS = 50
BATCH = 20
# Events of about 4 KB. The stuck socket's kernel buffers take in a few megabytes on
# loopback before the hub's queue (1 MiB at most) fills: the writer goes on until the
# stuck client is evicted, and at least this far.
AT_LEAST = 600
AT_MOST = 3000


async def test_a_client_that_stops_reading_is_closed_and_the_others_get_everything(service, tenant):
    live = live_of(service)
    db = service.app.state.inbox.db
    lead = tenant.api.post("/api/leads", json={"name": "Updated a lot", "notes": "n" * 3800})
    assert lead.status_code == 201, lead.text
    data = lead.json()
    key = tenant.api_key()
    evictions = live.hub.counters.evictions

    readers = [await open_ws(service.url, key) for _ in range(READERS)]
    for ws in readers:
        assert (await ready(ws))["last_event_id"] == 1
    host, port = service.url.removeprefix("http://").split(":")
    stuck = stuck_socket(host, int(port), key)
    last_id: list[int] = []

    async def writer() -> int:
        written = 0
        while written < AT_MOST and (
            written < AT_LEAST or live.hub.counters.evictions == evictions
        ):
            async with unit_of_work(db, tenant.org_id, live) as tx:
                for _ in range(BATCH):
                    tx.emit("lead.updated", data)
            written += BATCH
            # Let the connections' writers run between batches, as between requests.
            await asyncio.sleep(0.001)
        return written

    async def read_all(ws: Any) -> list[int]:
        ids: list[int] = []
        while not last_id or not ids or ids[-1] < last_id[0]:
            try:
                frame = await receive(ws, timeout=0.5)
            except TimeoutError:
                continue
            if "id" in frame:
                ids.append(frame["id"])
        return ids

    async def write() -> None:
        written = await on_loop(service.loop.loop, writer())
        last_id.append(1 + written)

    try:
        _, *results = await asyncio.gather(write(), *(read_all(ws) for ws in readers))
        assert last_id[0] > AT_LEAST and live.hub.counters.evictions == evictions + 1
        for ids in results:
            assert ids == list(range(2, last_id[0] + 1))
        # What the stuck client had taken in before it was cut off is valid and in order;
        # then the server closed it (4008 if the close frame got through) or dropped it.
        stream, ending = await asyncio.to_thread(read_to_end, stuck)
        frames, code = parse_stream(stream)
        assert frames[0]["type"] == "session.ready"
        # Its handshake answered, it may have joined after the first events: it gets
        # everything after the id its session.ready names.
        first = frames[0]["last_event_id"] + 1
        got = [f["id"] for f in frames if "id" in f]
        assert got and got == list(range(first, first + len(got))) and got[-1] < last_id[0]
        assert code == 4008 or (code is None and ending in ("reset", "closed")), (code, ending)
    finally:
        stuck.close()
        for ws in readers:
            await ws.close()
