"""Group commit: concurrent units of work share one transaction and one commit.

Webhook deliveries arrive many at a time, and each on its own would pay for a
transaction. Here they queue (`queue`) to one `GroupCommit` (`committer`), which takes
whatever is queued when it is free, runs it in one transaction (`attempt`), answers
each caller once it committed, or runs the units again as their failure requires
(`retry`), and publishes the batch's events in commit order (`publish_order`).

Units of one kind may also run *together*: consecutive units that name the same
``together`` function are handed to it in one call (``ingest.store_arrivals``).

Where the database is a server of its own (PostgreSQL), a second batch may be in
flight on a second connection, but only of units that cannot get in its way: each
unit names the *keys* it writes under, and a batch that starts beside another takes
only units whose keys are all outside it (`queue.CommitQueue`); its locks are taken
in the order every batch takes them (`lock_order`). `key_check` verifies, in tests,
that what a unit writes lies under the keys it named.
"""

from .committer import GroupCommit
from .key_check import WroteOutsideKeys
from .queue import Together, Work

__all__ = ["GroupCommit", "Together", "Work", "WroteOutsideKeys"]
