"""The one order in which write transactions take their locks on PostgreSQL.

Two transactions deadlock when each holds a row the other then waits for. A
group-commit batch reaches its rows across several statements and units (contacts
one statement per channel kind, messages after their contacts), so sorting inside
each statement cannot order what it takes (bench/README.md, "Deadlocks between two
processes").

So every write transaction of an organization takes, before touching any row:

1. the organization's write lock (a transaction-level advisory lock; organizations
   in id order): *shared* by a group-commit batch whose units all name the keys they
   write under, *exclusive* for any other write (a batch with a unit that names
   none, a REST change, the delivery worker's outcome of a send);
2. a lock per key of such a batch, in the order of their 64-bit digests;

then the rows as its work needs them, and last the organization's event counter
(`outbox.append_events`), which its holder commits right after taking.

Two batches that share the organization lock hold no key in common, and what a unit
with keys writes is reached through its keys (its senders' contacts and
conversations, and the messages it inserts). `group_commit.key_check` holds tests to
that for each run of units, against the keys the run's units named together, which is
what the locks are taken by; any other writer has the organization to itself.
Whatever could still form a cycle (one contact reached through two identities that no
key joins) fails as a deadlock, which the group commit runs again.

SQLite has one write lock: writers already take turns, and none of this applies.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Hashable, Iterable

from sqlalchemy import BigInteger, Integer, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlmodel.ext.asyncio.session import AsyncSession

# The first half of the organizations' two-part advisory lock keys; keys of one
# 64-bit number (the digests) are a space of their own.
ORGANIZATION_SPACE = 0x1B0C

_EXCLUSIVE = text("SELECT pg_advisory_xact_lock(:space, o) FROM unnest(:orgs) AS o").bindparams(
    bindparam("space", type_=Integer), bindparam("orgs", type_=ARRAY(Integer))
)
# One round trip: the organizations first, then the keys, each in the array's order
# (a function scan returns its rows in order; an append runs its parts in order).
_SHARED = text(
    "SELECT pg_advisory_xact_lock_shared(:space, o) FROM unnest(:orgs) AS o"
    " UNION ALL SELECT pg_advisory_xact_lock(k) FROM unnest(:keys) AS k"
).bindparams(
    bindparam("space", type_=Integer),
    bindparam("orgs", type_=ARRAY(Integer)),
    bindparam("keys", type_=ARRAY(BigInteger)),
)


def digest(key: Hashable) -> int:
    """A key's lock number: the same in every process (``repr`` of tuples of strings
    and numbers is stable; ``hash`` of a string is not)."""
    raw = hashlib.blake2b(repr(key).encode(), digest_size=8).digest()
    return int.from_bytes(raw, "big", signed=True)


async def lock_for_writing(
    session: AsyncSession,
    organization_ids: Iterable[int],
    keys: Collection[Hashable] | None = None,
) -> None:
    """Take steps 1 and 2 above, at the start of a write transaction.

    ``keys``: all that the transaction writes under (a group-commit batch of units
    that named theirs); None: it may write anything of its organizations."""
    connection = await session.connection()
    if connection.dialect.name != "postgresql":
        return
    orgs = sorted(set(organization_ids))
    if keys is None:
        await connection.execute(_EXCLUSIVE, {"space": ORGANIZATION_SPACE, "orgs": orgs})
        return
    numbers = sorted({digest(key) for key in keys})
    await connection.execute(_SHARED, {"space": ORGANIZATION_SPACE, "orgs": orgs, "keys": numbers})
