"""Run one job: `python -m bench.loadgen < job.json > result.json`."""

from __future__ import annotations

import asyncio
import json
import resource
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from ..jobspec import Job
from . import fanout, ingest, memory, replay

JOBS: dict[str, Callable[[Job], Awaitable[dict[str, Any]]]] = {
    "fanout": fanout.run,
    "ingest": ingest.run,
    "memory": memory.run,
    "replay": replay.run,
}


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def with_deadline(job: Job) -> dict[str, Any]:
    # Every job ends by itself; this bounds one that would not.
    limit = 600 + 10 * job.duration
    async with asyncio.timeout(limit):
        return await JOBS[job.kind](job)


def main() -> int:
    job = Job.from_json(json.load(sys.stdin))
    raise_fd_limit()
    try:
        import uvloop
    except ImportError:
        result = asyncio.run(with_deadline(job))
    else:
        result = uvloop.run(with_deadline(job))
    json.dump(result, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
