"""What /proc says about a process and the CPUs: CPU time, resident memory, core load."""

from __future__ import annotations

import os
from dataclasses import dataclass

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of every thread of `pid` so far (10 ms resolution)."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        stat = f.read()
    # The command name may contain spaces and parentheses: count fields after the last ')'.
    fields = stat[stat.rindex(b")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / CLOCK_TICKS


def process_rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


@dataclass(frozen=True)
class CoreTimes:
    """Busy and total jiffies of each CPU, from /proc/stat."""

    busy: dict[int, int]
    total: dict[int, int]


def core_times() -> CoreTimes:
    busy: dict[int, int] = {}
    total: dict[int, int] = {}
    with open("/proc/stat") as f:
        for line in f:
            if not line.startswith("cpu") or line.startswith("cpu "):
                continue
            name, *values = line.split()
            numbers = [int(v) for v in values[:8]]
            idle = numbers[3] + numbers[4]  # idle + iowait
            cpu = int(name[3:])
            total[cpu] = sum(numbers)
            busy[cpu] = total[cpu] - idle
    return CoreTimes(busy, total)


def core_busy_fraction(before: CoreTimes, after: CoreTimes, cpus: list[int]) -> float | None:
    """How busy `cpus` were between two samples, 0..1 (averaged over them)."""
    busy = sum(after.busy.get(c, 0) - before.busy.get(c, 0) for c in cpus)
    total = sum(after.total.get(c, 0) - before.total.get(c, 0) for c in cpus)
    return busy / total if total > 0 else None


def load_average() -> tuple[float, float, float]:
    one, five, fifteen = os.getloadavg()
    return one, five, fifteen
