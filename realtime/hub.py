"""The per-process registry of connections, and the dispatch of events to them.

`dispatch` never waits on a socket, so one that stopped reading cannot slow the others;
a connection past its limits is evicted with close code 4008 and can resume by id.
What a connection is and how its events reach it: `connection` and `writers`; once
each and in order: `ordering`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from .connection import (
    CLOSE_GOING_AWAY,
    CLOSE_INTERNAL_ERROR,
    CLOSE_SERVICE_RESTART,
    CLOSE_TOO_SLOW,
    CLOSE_TRY_AGAIN_LATER,
    CLOSE_UNAUTHORIZED,
    Connection,
    ConnectionStateError,
    Limits,
    Socket,
    SocketClosed,
    State,
)
from .counters import HubCounters
from .envelope import Envelope
from .eventlog import EventLog
from .metrics import CONNECTIONS_OPEN, DELIVERIES
from .ordering import EventOrder
from .writers import TurnEnd

__all__ = [
    "CLOSE_GOING_AWAY",
    "CLOSE_INTERNAL_ERROR",
    "CLOSE_SERVICE_RESTART",
    "CLOSE_TOO_SLOW",
    "CLOSE_TRY_AGAIN_LATER",
    "CLOSE_UNAUTHORIZED",
    "Connection",
    "ConnectionStateError",
    "Hub",
    "HubCounters",
    "Socket",
    "SocketClosed",
    "State",
]


class _Organization:
    __slots__ = ("connections", "order")

    def __init__(self) -> None:
        # Replaced, never mutated: dispatch iterates it while connections come and go.
        self.connections: tuple[Connection, ...] = ()
        self.order: EventOrder


class Hub:
    def __init__(
        self,
        *,
        max_queue_messages: int = 1024,
        max_queue_bytes: int = 1 << 20,
        close_timeout: float = 5.0,
        dedupe_window: int = 256,
        fill_gaps_from: EventLog | None = None,
        reorder_wait: float = 0.05,
        max_held: int = 4096,
    ) -> None:
        """`fill_gaps_from`: the event log of an application whose stored ids count 1, 2,
        3... per organization. Then a jump in ids means an event is late (another process
        published it a moment later) or lost (its publish failed): the hub holds what came
        early for `reorder_wait` seconds, then reads the missing ids from the log, so every
        connection gets every event in id order."""
        self.limits = Limits(max_queue_messages, max_queue_bytes, close_timeout)
        self.counters = HubCounters()
        self._dedupe_window = dedupe_window
        self._fill_gaps_from = fill_gaps_from
        self._reorder_wait = reorder_wait
        self._max_held = max_held
        self._organizations: dict[int, _Organization] = {}
        self._turn = TurnEnd()

    @property
    def connection_count(self) -> int:
        return sum(len(org.connections) for org in self._organizations.values())

    def last_in_order(self, organization_id: int) -> int | None:
        """With a log to fill gaps from: the id of the last event handed out in order,
        if any was (see `EventOrder.last_in_order`)."""
        org = self._organizations.get(organization_id)
        return None if org is None else org.order.last_in_order

    def connections(self, organization_id: int) -> tuple[Connection, ...]:
        org = self._organizations.get(organization_id)
        return () if org is None else org.connections

    def connect(
        self,
        socket: Socket,
        organization_id: int,
        *,
        events: Iterable[str] | None = None,
        conversation_ids: Iterable[int] | None = None,
        subject: str | None = None,
    ) -> Connection:
        """Register a connection: from now on its events are queued, not lost."""
        connection = Connection(
            socket,
            organization_id,
            events=None if events is None else frozenset(events),
            conversation_ids=None if conversation_ids is None else frozenset(conversation_ids),
            subject=subject,
            limits=self.limits,
            counters=self.counters,
            turn=self._turn,
            unregister=self._unregister,
        )
        org = self._organizations.get(organization_id)
        if org is None:
            org = self._organizations[organization_id] = self._organization(organization_id)
        org.connections = (*org.connections, connection)
        self.counters.connections_opened += 1
        CONNECTIONS_OPEN.inc()
        return connection

    def revoke(self, organization_id: int, subject: str, code: int = CLOSE_UNAUTHORIZED) -> int:
        """Close the connections a revoked credential opened; answer how many."""
        revoked = [c for c in self.connections(organization_id) if c.subject == subject]
        for connection in revoked:
            connection.close(code)
        return len(revoked)

    def dispatch(self, envelope: Envelope) -> None:
        """Hand an event to every local connection of its organization that wants it.

        It only queues or writes without waiting. Dispatching a long burst without
        yielding to the event loop would queue all of it at once and evict healthy
        connections: callers yield now and then.
        """
        org = self._organizations.get(envelope.organization_id)
        if org is None:
            return
        if envelope.id is None:
            self._fan_out(org, envelope)
        else:
            org.order.receive(envelope)

    async def catch_up(self, event_log: EventLog) -> int:
        """Re-dispatch what may have been missed, e.g. after the broker came back; answer
        how many stored events were read. What was delivered already is dropped by id."""
        read = 0
        for org in list(self._organizations.values()):
            read += await org.order.catch_up(event_log)
        return read

    async def close_all(self, code: int = CLOSE_SERVICE_RESTART) -> None:
        connections = [c for org in self._organizations.values() for c in org.connections]
        for connection in connections:
            connection.close(code)
        await asyncio.gather(*(connection.closed() for connection in connections))

    def _organization(self, organization_id: int) -> _Organization:
        org = _Organization()
        org.order = EventOrder(
            organization_id,
            lambda envelope: self._fan_out(org, envelope),
            lambda: org.connections,
            self.counters,
            window=self._dedupe_window,
            fill_gaps_from=self._fill_gaps_from,
            wait=self._reorder_wait,
            max_held=self._max_held,
        )
        return org

    def _fan_out(self, org: _Organization, envelope: Envelope) -> None:
        delivered = 0
        for connection in org.connections:
            if connection.wants(envelope):
                connection.deliver(envelope)
                delivered += 1
        self.counters.events_dispatched += 1
        self.counters.deliveries += delivered
        if delivered:
            DELIVERIES.inc(delivered)

    def _unregister(self, connection: Connection) -> None:
        org = self._organizations.get(connection.organization_id)
        if org is None:
            return
        org.connections = tuple(c for c in org.connections if c is not connection)
        if not org.connections:
            org.order.stop()
            del self._organizations[connection.organization_id]
