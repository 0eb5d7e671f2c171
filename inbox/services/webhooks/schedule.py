"""When a failed delivery is tried again."""

from __future__ import annotations

import random
from collections.abc import Sequence

# Each delay is stretched or shrunk by up to this share, so that the retries of many
# deliveries that failed together do not all come back at the same moment.
JITTER = 0.2
# Its own generator: the module's shared one is left to whoever seeds it.
_random = random.SystemRandom()


def retry_delay(
    schedule: Sequence[float], attempts: int, retry_after: float | None = None
) -> float | None:
    """Seconds before the next attempt after ``attempts`` have failed, or None when the
    schedule is over. A receiver's ``Retry-After`` is honoured up to the schedule's
    longest delay."""
    if attempts > len(schedule):
        return None
    base = schedule[attempts - 1]
    delay = base * _random.uniform(1 - JITTER, 1 + JITTER)
    if retry_after is not None:
        delay = max(delay, min(retry_after, max(schedule)))
    return delay
