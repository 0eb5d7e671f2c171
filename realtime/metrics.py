"""What the hub and the broker report to Prometheus, in the process's default registry.

Each figure is bumped once per event, connection or replay, never once per delivery:
the fan-out adds a dispatch's deliveries in one increment. None is labelled by
organization or user (their number has no bound). Gauges say how to combine the
processes of one server (prometheus-client's multiprocess mode): a sum of the live
ones, or their minimum for the broker's state, so that one process cut off shows.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# Why a connection was evicted: it stopped reading and its queue of frames filled up,
# or the bytes the transport could not send piled up.
EVICTED_QUEUE = "queue_full"
EVICTED_UNSENT = "unsent_bytes"

CONNECTIONS_OPEN = Gauge(
    "realtime_connections_open",
    "WebSocket connections registered with the hub",
    multiprocess_mode="livesum",
)
DELIVERIES = Counter(
    "realtime_deliveries", "Events handed to WebSocket connections (one per connection)"
)
EVICTIONS = Counter(
    "realtime_evictions", "WebSocket connections closed for being too slow", ["reason"]
)
REPLAYS = Counter("realtime_replays", "Resumptions (?last_event_id=) that replayed stored events")
REPLAY_SIZE = Histogram(
    "realtime_replay_events",
    "Events replayed to one resuming connection",
    buckets=(1, 10, 100, 1_000, 10_000, 100_000),
)
BROKER_CONNECTED = Gauge(
    "realtime_broker_connected",
    "1 while the broker's subscription is up (the minimum over a server's processes)",
    multiprocess_mode="livemin",
)
BROKER_RECONNECTS = Counter(
    "realtime_broker_reconnects", "Times the broker's subscription came back after a loss"
)

for reason in (EVICTED_QUEUE, EVICTED_UNSENT):
    # Present from the start at 0, so that rate() sees the first eviction.
    EVICTIONS.labels(reason)
