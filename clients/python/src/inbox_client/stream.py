"""The event stream: a ticket, a socket, and on every drop a reconnect that resumes from
the last event handed to the caller, so nothing is missed and nothing comes twice."""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlencode

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from .errors import InboxError, ReplayTruncated
from .types import Event

log = logging.getLogger("inbox_client")

# Close codes the service sends (see its AsyncAPI document at /asyncapi.json).
CLOSE_UNAUTHORIZED = 4401
CLOSE_TOO_SLOW = 4008
CLOSE_TRY_AGAIN_LATER = 1013
CLOSE_TOO_MANY_SOCKETS = 4429
# Frames about the connection itself, not events.
_QUIET = frozenset({"pong", "subscription"})


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter: the n-th retry in a row waits a random time
    between 0 and min(cap, base * 2**n) seconds, so clients dropped together do not all
    come back at the same moment."""

    base: float = 0.5
    cap: float = 30.0

    def delay(self, failures: int) -> float:
        return random.uniform(0, min(self.cap, self.base * 2 ** min(failures, 32)))


class Position:
    """Where the stream stands: the id of the last stored event handed to the caller."""

    def __init__(self, last_event_id: int | None) -> None:
        self.last_event_id = last_event_id


async def stream(
    *,
    ws_url: str,
    ticket: Callable[[], Awaitable[str]],
    position: Position,
    types: Iterable[str] | None,
    backoff: Backoff,
) -> AsyncGenerator[Event, None]:
    events = ",".join(types) if types is not None else None
    failures = 0
    while True:
        query: dict[str, str] = {}
        delay: float | None = None
        code: int | None = None
        try:
            query["ticket"] = await ticket()
            if events:
                query["events"] = events
            if position.last_event_id is not None:
                query["last_event_id"] = str(position.last_event_id)
            async with connect(f"{ws_url}?{urlencode(query)}", open_timeout=10) as ws:
                log.info("connected; resuming after event %s", position.last_event_id)
                async for raw in ws:
                    frame = json.loads(raw)
                    event = _take(frame, position)
                    if event is not None:
                        failures = 0
                        yield event
            code = ws.close_code
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd is not None else None
        except InvalidStatus as exc:
            response = exc.response
            body = bytes(response.body or b"")
            error = InboxError.from_body(response.status_code, body, response.headers)
            if not _transient(error):
                raise error from None
            delay = error.retry_after
        except InboxError as error:  # from the ticket
            if not _transient(error):
                raise
            delay = error.retry_after
        except (OSError, TimeoutError, InvalidHandshake, httpx.TransportError) as exc:
            log.info("cannot connect: %s", exc)
        if code == CLOSE_UNAUTHORIZED:
            raise InboxError(None, "AUTHENTICATION_FAILED",
                             "the credential expired or was revoked (close code 4401)")
        if code == CLOSE_TOO_SLOW:
            # The service let go of a reader that fell behind; it is caught up from the
            # last id at once, without waiting.
            log.info("closed with code 4008 (reading too slowly); resuming now")
            continue
        if delay is None:
            delay = backoff.delay(failures)
        failures += 1
        log.info("connection closed (code %s); reconnecting in %.2f s", code, delay)
        await asyncio.sleep(delay)


def _take(frame: Any, position: Position) -> Event | None:
    """What of a frame goes to the caller; moves the position on."""
    if not isinstance(frame, dict):
        return None
    kind = frame.get("type")
    event_id = frame.get("id")
    if kind == "error" and isinstance(frame.get("event_id"), int):
        # A stored event the service cannot send, in its place: it counts as passed.
        event_id = frame["event_id"]
    elif kind == "error":
        code, message = str(frame.get("code")), str(frame.get("message"))
        # Asking for event types the service does not know is a mistake to fix, not to
        # stream past; other errors concern one frame, and the connection stays open.
        if code == "UNKNOWN_EVENT_TYPE":
            raise InboxError(None, code, message)
        log.warning("the service reported %s: %s", code, message)
        return None
    if isinstance(event_id, int):
        last = position.last_event_id
        if last is not None and event_id <= last:
            return None  # sent again after a reconnect
        position.last_event_id = event_id
        return cast(Event, frame)
    if kind == "session.ready":
        ready = frame.get("last_event_id")
        # Starting from now: "now" is this id, so a reconnect before the first event
        # misses nothing.
        if position.last_event_id is None and isinstance(ready, int):
            position.last_event_id = ready
        return None
    if kind == "replay.truncated":
        raise ReplayTruncated(position.last_event_id)
    if kind in _QUIET or not isinstance(kind, str):
        return None
    return cast(Event, frame)


def _transient(error: InboxError) -> bool:
    """Worth trying again: the service is busy, restarting or briefly unreachable."""
    return error.status is not None and (error.status == 429 or error.status >= 500)
