"""Replay: the time one reconnecting client takes to get N missed events."""

from __future__ import annotations

from ..environment import Backend, Environment
from .common import Entry, figures, guarded, progress

FIGURES = ("seconds", "ready_ms", "events_per_s", "events", "gaps", "repeats",
           "server_cpu_us_per_event")


def run_backend(env: Environment, backend: Backend) -> Entry:
    options = env.options
    with env.service(backend, redis=backend == "postgres") as service:
        progress(f"replay: {service.label}, {options.replay_events} events, {options.runs} runs")
        job = env.job(service, kind="replay", replay_events=options.replay_events,
                      replay_runs=options.runs)
        result = env.run_job(service, job)
    return {
        "scenario": "replay",
        "server": service.label,
        "events": options.replay_events,
        "populate_webhooks_per_s": result["populate_webhooks_per_s"],
        "figures": figures(result["runs"], FIGURES),
        "runs": result["runs"],
    }


def run(env: Environment) -> list[Entry]:
    return [
        *guarded("replay", lambda: [run_backend(env, "sqlite")]),
        *guarded("replay", lambda: [run_backend(env, "postgres")]),
    ]
