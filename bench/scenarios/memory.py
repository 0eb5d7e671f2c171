"""Memory: server RSS per idle, subscribed connection, for the service and the
reference; a fresh server for every run."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from ..environment import Environment, ServerGroup
from .common import Entry, figures, progress

FIGURES = ("kib_per_connection", "rss_before_kib", "rss_after_kib", "connect_s",
           "server_cpu_ms_per_connect")


def measure(
    env: Environment, start: Callable[[], AbstractContextManager[ServerGroup]]
) -> tuple[str, list[dict[str, Any]]]:
    runs, label = [], ""
    for round_ in range(env.options.runs):
        with start() as group:
            label = group.label
            progress(f"memory: {label}, {env.options.memory_clients} clients, run {round_ + 1}")
            job = env.job(group, kind="memory", clients=env.options.memory_clients)
            runs.append(env.run_job(group, job))
    return label, runs


def run(env: Environment) -> list[Entry]:
    measured = [measure(env, lambda: env.service("sqlite", redis=False))]
    if env.options.reference:
        measured.append(measure(env, env.reference))
    return [
        {"scenario": "memory", "server": label, "clients": env.options.memory_clients,
         "figures": figures(runs, FIGURES), "runs": runs}
        for label, runs in measured
    ]
