"""The sandbox platform's delivery reports, applied as a platform's status webhook is.

Once the delivery worker has recorded a sandbox send ``sent``, the reports the sandbox
scripts for it (``connectors.sandbox.reports``) are played back on timers, each through
``ingest`` exactly as ``/webhooks/<kind>`` applies a status delivery of that channel:
the same group commit, the same forward-only status move, the same ``message.status``
events. Nothing here is specific to the sandbox but the timing.

The timers live in this process only: a report not yet due when the process stops is
lost, and the message stays at the last status it reached.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from connectors.sandbox import Report

from ..models import Channel
from .group_commit import GroupCommit
from .ingest import ingest

log = logging.getLogger("inbox.sandbox")

# Sends whose reports may be pending at once. Reports come seconds after a send, so
# this is far more than people clicking through a demo make; past it, reports of new
# sends are dropped rather than held without bound.
MAX_PENDING = 1000


class SandboxReports:
    """Plays back the sandbox's delivery reports; owned by the app's lifespan."""

    def __init__(self, commits: GroupCommit, *, max_pending: int = MAX_PENDING) -> None:
        self.commits = commits
        self.max_pending = max_pending
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    @property
    def pending(self) -> int:
        return len(self._tasks)

    def schedule(self, channel: Channel, reports: Sequence[Report]) -> bool:
        """Apply each report once it is due; answer whether they were taken."""
        if self._closed or not reports:
            return False
        if len(self._tasks) >= self.max_pending:
            log.warning(
                "sandbox: %d sends await their reports already; channel %s's are dropped",
                len(self._tasks),
                channel.id,
            )
            return False
        task = asyncio.get_running_loop().create_task(
            self._play(channel, list(reports)), name="sandbox-reports"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def _play(self, channel: Channel, reports: list[Report]) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        for report in reports:
            await asyncio.sleep(max(0.0, start + report.after - loop.time()))
            try:
                await ingest(self.commits, channel, [report.event])
            except Exception:
                # The next report may still apply: status only moves forward, and a
                # later one (read) covers an earlier one that was lost (delivered).
                log.exception(
                    "sandbox: applying %s for %s failed",
                    report.event.status,
                    report.event.external_id,
                )

    async def close(self) -> None:
        """Cancel every pending report; later ``schedule`` calls are refused."""
        self._closed = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
