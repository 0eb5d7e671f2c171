"""What a connection is sent before its live stream: `session.ready`, then on resume the
events it missed. Live events that come meanwhile wait in its queue."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .connection import Connection
from .envelope import Envelope
from .eventlog import EventLog, ReplayTruncated, reading
from .hub import Hub
from .metrics import REPLAY_SIZE, REPLAYS
from .protocol import REPLAY_TRUNCATED, session_ready


async def send_prelude(
    connection: Connection,
    *,
    hub: Hub,
    log: EventLog,
    user: Mapping[str, Any],
    resume_from: int | None,
    ignored: Envelope | None,
) -> int:
    """Send the prelude; answer the id its live stream starts after (`live_after`).

    `ignored`: the error frame about `?events=` names that are no event type, if any.
    """
    organization_id = connection.organization_id
    start = resume_from
    if start is None:
        start = hub.last_in_order(organization_id)
        if start is None:
            start = await log.latest_id(organization_id)
    await connection.send_now(session_ready(connection.id, user, organization_id, start))
    # Right after session.ready, ahead of any replay, where a client looks first.
    if ignored is not None:
        await connection.send_now(ignored)
    if resume_from is None:
        return start
    last = resume_from
    replayed = 0
    try:
        async with reading(log, organization_id, resume_from) as events:
            async for envelope in events:
                if connection.wants(envelope):
                    await connection.send_now(envelope)
                    replayed += 1
                if envelope.id is not None and envelope.id > last:
                    last = envelope.id
    except ReplayTruncated:
        await connection.send_now(REPLAY_TRUNCATED)
    finally:
        hub.counters.replayed += replayed
        REPLAYS.inc()
        REPLAY_SIZE.observe(replayed)
    return last
