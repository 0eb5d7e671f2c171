"""The service's Prometheus figures (the hub's and the broker's are in `realtime.metrics`).

No label names an organization, a user or a raw path: their number has no bound.
HTTP requests are labelled by the route's template (``/api/conversations/{id}``), and
a path no route matches by ``unmatched``. On the hot paths (a request, a webhook, a
batch) each figure costs one increment or one observation of a labelled child that
is looked up once and kept.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol, TypeVar

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from connectors.types import SendError


class Counts(Protocol):
    """What an ingest answers (`IngestResult`)."""

    stored: int
    duplicates: int
    updated: int


M = TypeVar("M", bound=MetricWrapperBase)

UNMATCHED = "unmatched"

HTTP_REQUESTS = Counter(
    "inbox_http_requests", "HTTP requests answered", ["route", "method", "status"]
)
HTTP_DURATION = Histogram(
    "inbox_http_request_duration_seconds",
    "Time from a request's arrival to the end of its answer",
    ["route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
WEBHOOKS = Counter(
    "inbox_webhooks_received", "Webhook deliveries received, by how they ended", ["kind", "outcome"]
)
BATCH_SIZE = Histogram(
    "inbox_group_commit_batch_size",
    "Units of work (mostly webhook deliveries) sharing one group commit",
    buckets=(1, 2, 4, 8, 16, 32, 64),
)
COMMIT_DURATION = Histogram(
    "inbox_group_commit_duration_seconds",
    "Time a group commit's batch took, from its first statement to its commit",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
EVENTS_PUBLISHED = Counter(
    "inbox_events_published", "Committed events handed to the broker for live delivery"
)
OUTBOUND = Counter(
    "inbox_outbound_sends", "Attempts to send a reply through a platform", ["kind", "outcome"]
)
OUTGOING_WEBHOOKS = Counter(
    "inbox_outgoing_webhook_deliveries",
    "Attempts to deliver an event to an outgoing webhook endpoint, by outcome: "
    "succeeded (2xx), retry (to be attempted again), failed (for good)",
    ["outcome"],
)
OUTBOUND_DURATION = Histogram(
    "inbox_outbound_send_duration_seconds",
    "Time a platform took to answer a send",
    ["kind"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
SERVER_PROCESSES = Gauge(
    "inbox_server_processes",
    "Server processes running: 1, or the workers of inbox serve --workers N",
    multiprocess_mode="livesum",
)
DB_CONNECTIONS_IN_USE = Gauge(
    "inbox_db_connections_in_use",
    "Database connections checked out of the pools (the group commit holds its own)",
    multiprocess_mode="livesum",
)

# How a webhook delivery ended. "ignored": signed by a channel here, but holding
# nothing the service acts on (a field it does not subscribe to, an echo).
WEBHOOK_OUTCOMES = (
    "stored",
    "duplicate",
    "ignored",
    "bad_signature",
    "unknown_channel",
    "malformed",
    "rate_limited",
    "failed",
)
WEBHOOK_KINDS = ("whatsapp", "instagram", "sms", "generic", "lead_form")
OUTBOUND_OUTCOMES = ("sent", "retry", "failed")
OUTGOING_WEBHOOK_OUTCOMES = ("succeeded", "retry", "failed")
OUTBOUND_KINDS = ("whatsapp", "instagram", "sms", "generic")


def _children(metric: M, *label_sets: tuple[str, ...]) -> dict[tuple[str, ...], M]:
    """Every child of ``metric`` over the product of ``label_sets``, made now: each
    series exists from the start at 0 (so that rate() sees its first increase) and is
    found later by one dict look-up, without the metric's lock."""
    keys: list[tuple[str, ...]] = [()]
    for values in label_sets:
        keys = [(*key, value) for key in keys for value in values]
    return {key: metric.labels(*key) for key in keys}


_webhooks = _children(WEBHOOKS, WEBHOOK_KINDS, WEBHOOK_OUTCOMES)
_outbound = _children(OUTBOUND, OUTBOUND_KINDS, OUTBOUND_OUTCOMES)
_outbound_duration = _children(OUTBOUND_DURATION, OUTBOUND_KINDS)
_outgoing_webhooks = _children(OUTGOING_WEBHOOKS, OUTGOING_WEBHOOK_OUTCOMES)


def webhook_received(kind: str, outcome: str) -> None:
    child = _webhooks.get((kind, outcome))
    if child is None:
        child = _webhooks[(kind, outcome)] = WEBHOOKS.labels(kind, outcome)
    child.inc()


def webhook_stored(kind: str, result: Counts, *, unrouted: bool = False) -> None:
    """Count a delivery that was answered 200, by what became of it."""
    if unrouted:
        outcome = "unknown_channel"
    elif result.stored or result.updated:
        outcome = "stored"
    elif result.duplicates:
        outcome = "duplicate"
    else:
        outcome = "ignored"
    webhook_received(kind, outcome)


@contextmanager
def sending(kind: str) -> Iterator[None]:
    """Count and time one send to a platform: sent, or refused for good or for now."""
    started = time.perf_counter()
    outcome = "failed"
    try:
        yield
        outcome = "sent"
    except SendError as exc:
        outcome = "retry" if exc.retryable else "failed"
        raise
    finally:
        outbound_sent(kind, outcome, time.perf_counter() - started)


def outbound_sent(kind: str, outcome: str, seconds: float) -> None:
    counter = _outbound.get((kind, outcome))
    if counter is None:
        counter = _outbound[(kind, outcome)] = OUTBOUND.labels(kind, outcome)
    counter.inc()
    duration = _outbound_duration.get((kind,))
    if duration is None:
        duration = _outbound_duration[(kind,)] = OUTBOUND_DURATION.labels(kind)
    duration.observe(seconds)


def outgoing_webhook_delivered(outcome: str, count: int = 1) -> None:
    _outgoing_webhooks[(outcome,)].inc(count)


def count_connections_in_use(engine: AsyncEngine) -> None:
    """Keep DB_CONNECTIONS_IN_USE by the engine's pool's own check-outs and check-ins."""
    pool = engine.sync_engine.pool

    def checked_out(*_args: Any) -> None:
        DB_CONNECTIONS_IN_USE.inc()

    def checked_in(*_args: Any) -> None:
        DB_CONNECTIONS_IN_USE.dec()

    event.listen(pool, "checkout", checked_out)
    event.listen(pool, "checkin", checked_in)
