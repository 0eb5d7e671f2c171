"""CPU time of the servers and of this generator between two moments."""

from __future__ import annotations

import asyncio
import resource
import time
from dataclasses import dataclass
from typing import Any

from ..jobspec import Job
from ..procstat import CoreTimes, core_busy_fraction, core_times, process_cpu_seconds


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass(frozen=True)
class Sample:
    wall: float
    server_cpu: float
    own_cpu: float
    cores: CoreTimes


def sample(job: Job) -> Sample:
    return Sample(
        wall=time.monotonic(),
        server_cpu=sum(process_cpu_seconds(pid) for pid in job.server_pids),
        own_cpu=own_cpu_seconds(),
        cores=core_times(),
    )


def usage(job: Job, start: Sample, end: Sample) -> dict[str, Any]:
    """CPU figures over [start, end]: the servers', this generator's, and how busy the
    pinned cores were with everything (other processes included: the noise)."""
    wall = end.wall - start.wall
    server = end.server_cpu - start.server_cpu
    own = end.own_cpu - start.own_cpu
    return {
        "wall_s": round(wall, 3),
        "server_cpu_s": round(server, 3),
        "server_cpu_pct": round(100 * server / wall, 1) if wall > 0 else None,
        "generator_cpu_s": round(own, 3),
        "generator_cpu_pct": round(100 * own / wall, 1) if wall > 0 else None,
        "server_cores_busy_pct": _pct(core_busy_fraction(start.cores, end.cores, job.server_cpus)),
        "generator_cores_busy_pct": _pct(
            core_busy_fraction(start.cores, end.cores, job.loadgen_cpus)
        ),
    }


async def servers_quiet(
    job: Job, busy_below: float = 0.15, interval: float = 0.5, timeout: float = 60.0
) -> float:
    """Wait until the servers are idle (work left over from an earlier run, e.g.
    webhooks whose requests timed out, must not land in this one). Returns the wait."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        before = sum(process_cpu_seconds(pid) for pid in job.server_pids)
        await asyncio.sleep(interval)
        after = sum(process_cpu_seconds(pid) for pid in job.server_pids)
        if after - before < busy_below * interval:
            break
    return round(time.monotonic() - started, 2)


def _pct(fraction: float | None) -> float | None:
    return None if fraction is None else round(100 * fraction, 1)
