"""Fan-out: C clients, events at 10/s, 100/s and unthrottled, on the embedded default
(SQLite + in-memory broker), each run paired with one of the reference."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

from ..environment import Environment, ServerGroup
from .common import Entry, figures, progress, ratios

FIGURES = (
    "deliveries_per_s",
    "events_per_s",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "lost",
    "duplicates",
    "out_of_order",
    "backlog_at_end",
    "disconnected_clients",
    "errors",
    "server_cpu_us_per_delivery",
    "generator_cpu_us_per_delivery",
    "frame_bytes_avg",
    "window.server_cpu_pct",
    "window.generator_cpu_pct",
    "window.server_cores_busy_pct",
)
# Long enough for the stalled client's socket to take more than its limit (1 MiB
# unsent) on top of what the kernel buffers for it on loopback (about 3 MB here): at
# 83 events/s of 563 bytes, 40 s (1.9 MB) and 60 s were sometimes not enough.
STALLED_SECONDS = 120.0
VERSUS_REFERENCE = ("deliveries_per_s", "p50_ms", "p99_ms", "server_cpu_us_per_delivery")


def rate_name(rate: float | None) -> str:
    return "unthrottled" if rate is None else f"{rate:g}/s"


def series(
    env: Environment,
    scenario: str,
    service: ServerGroup,
    reference: ServerGroup | None,
    rates: Sequence[float | None],
    drivers: Sequence[str],
) -> list[Entry]:
    """For each rate, `runs` rounds of: each driver against the service, then the
    reference; interleaved so slow drifts of the machine hit both alike."""
    entries: list[Entry] = []
    for rate in rates:
        runs: dict[str, list[dict[str, Any]]] = {driver: [] for driver in drivers}
        reference_runs: list[dict[str, Any]] = []
        for round_ in range(env.options.runs):
            for driver in drivers:
                progress(f"{scenario}: {service.label} {driver} {rate_name(rate)} run {round_ + 1}")
                job = env.job(service, kind="fanout", driver=driver, rate=rate)
                runs[driver].append(env.run_job(service, job))
            if reference is not None:
                progress(f"{scenario}: {reference.label} {rate_name(rate)} run {round_ + 1}")
                job = env.job(reference, kind="fanout", rate=rate)
                reference_runs.append(env.run_job(reference, job))
        for driver in drivers:
            entries.append(entry(scenario, service, driver, rate, runs[driver], reference_runs))
        if reference is not None:
            entries.append(entry(scenario, reference, "publish", rate, reference_runs, []))
    return entries


def entry(
    scenario: str,
    group: ServerGroup,
    driver: str,
    rate: float | None,
    runs: list[dict[str, Any]],
    reference_runs: list[dict[str, Any]],
) -> Entry:
    return {
        "scenario": scenario,
        "server": group.label,
        "processes": len(group.processes),
        "driver": driver,
        "rate": rate_name(rate),
        "clients": runs[0]["clients"] if runs else None,
        "figures": figures(runs, FIGURES),
        "vs_reference": ratios(runs, reference_runs, VERSUS_REFERENCE) if reference_runs else None,
        "runs": runs,
    }


def stalled(env: Environment, service: ServerGroup) -> Entry:
    """The unthrottled workload with one extra client that never reads: it should be
    evicted, and the others' p99 should stay where it was without it. The closed loop
    paces itself on the reading clients, so an overloaded server cannot blur that.

    Each round first runs the same workload, as long, without the stalled client: a
    window twelve times longer than the others' has a p99 of its own (more of the
    rare pauses fall in it), so only a run of the same length is the comparison."""
    # Long enough to fill the stalled client's queue (1,024 events) and socket buffers.
    duration = env.options.duration if env.options.quick else max(env.options.duration,
                                                                  STALLED_SECONDS)
    runs, without = [], []
    for round_ in range(env.options.runs):
        progress(f"fanout: {service.label} whatsapp unthrottled for {duration:g} s, "
                 f"without and then with a stalled client, run {round_ + 1}")
        job = env.job(service, kind="fanout", driver="whatsapp", rate=None, duration=duration)
        without.append(env.run_job(service, job))
        job = env.job(service, kind="fanout", driver="whatsapp", rate=None, stalled_client=True,
                      duration=duration)
        runs.append(env.run_job(service, job))
    result = entry("fanout-stalled", service, "whatsapp + 1 stalled client", None, runs, [])
    result["stalled_evicted"] = [bool(r["stalled_client"]["evicted"]) for r in runs]
    result["vs_without_stalled"] = ratios(runs, without, ("p99_ms",))
    result["runs_without_stalled"] = without
    return result


def run(env: Environment) -> list[Entry]:
    options = env.options
    with contextlib.ExitStack() as stack:
        service = stack.enter_context(env.service("sqlite", redis=False))
        reference = stack.enter_context(env.reference()) if options.reference else None
        entries = series(env, "fanout", service, reference, options.rates, options.drivers)
        if options.stalled:
            entries.append(stalled(env, service))
    return entries
