"""Ingest: signed WhatsApp webhooks persisted and acknowledged per second, with and
without subscribers, on SQLite + memory broker and on PostgreSQL + Redis."""

from __future__ import annotations

from ..environment import Backend, Environment
from .common import Entry, figures, guarded, progress

FIGURES = (
    "webhooks_per_s",
    "ack_ms.p50_ms",
    "ack_ms.p99_ms",
    "server_cpu_us_per_webhook",
    "errors",
    "lost",
    "duplicates",
    "out_of_order",
    "delivery_ms.p99_ms",
    "window.server_cpu_pct",
    "window.generator_cpu_pct",
    "window.server_cores_busy_pct",
)
# Senders spread over many contacts, as real traffic is: each contact's messages
# are serialized by its row lock.
SENDERS = 200


def run_backend(env: Environment, backend: Backend) -> list[Entry]:
    options = env.options
    entries = []
    with env.service(backend, redis=backend == "postgres") as service:
        for subscribers in (0, options.ingest_subscribers):
            runs = []
            for round_ in range(options.runs):
                progress(f"ingest: {service.label}, {subscribers} subscribers, run {round_ + 1}")
                job = env.job(service, kind="ingest", driver="whatsapp", clients=subscribers,
                              in_flight=options.ingest_concurrency, senders=SENDERS)
                runs.append(env.run_job(service, job))
            entries.append({
                "scenario": "ingest",
                "server": service.label,
                "subscribers": subscribers,
                "concurrency": options.ingest_concurrency,
                "figures": figures(runs, FIGURES),
                "runs": runs,
            })
    return entries


def run(env: Environment) -> list[Entry]:
    return [
        *guarded("ingest", lambda: run_backend(env, "sqlite")),
        *guarded("ingest", lambda: run_backend(env, "postgres")),
    ]
