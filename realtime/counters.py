"""What a hub counts: read by metrics and tests, written by the hub's parts."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class HubCounters:
    connections_opened: int = 0
    connections_closed: int = 0
    events_dispatched: int = 0
    duplicates_dropped: int = 0
    deliveries: int = 0
    evictions: int = 0
    aborted: int = 0
    replayed: int = 0
