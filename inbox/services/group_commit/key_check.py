"""A check that a batch's work writes contacts and conversations only under its keys.

Two PostgreSQL batches run side by side only because each unit names every key it
writes under (`lock_order`). This finds, after each run of units, the contact and
conversation rows the transaction has written so far (on PostgreSQL a row's ``xmin``
is the transaction, or savepoint, that wrote it) and fails the run when one of them
belongs to a contact none of whose keys the run named. A contact's keys are those
`ingest.writes_under` names: ``(organization, kind, sender id)`` of each of
its identities (and of the user id it also goes by), and ``(organization, "phone",
number)``. A contact with none (made by hand, by a unit's own test) cannot be reached
through a key and is not checked.

Off unless asked for (tests); SQLite runs one batch at a time and is never checked.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Hashable

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.types import Integer
from sqlmodel.ext.asyncio.session import AsyncSession

# Set to 1 to check every group commit's keys (the tests do).
ENVIRONMENT = "INBOX_CHECK_WRITE_KEYS"

# Written by this transaction: its xid, or a savepoint's, is still in progress; no
# other transaction's uncommitted row is visible to it.
_MINE = (
    "pg_xact_status(((pg_current_xact_id()::text::bigint >> 32 << 32)"
    " + {alias}.xmin::text::bigint)::text::xid8) = 'in progress'"
)
_WRITTEN_CONTACTS = text(
    "SELECT c.id FROM contacts c WHERE c.organization_id = ANY(:orgs) AND "
    + _MINE.format(alias="c")
    + " UNION SELECT v.contact_id FROM conversations v WHERE v.organization_id = ANY(:orgs) AND "
    + _MINE.format(alias="v")
).bindparams(bindparam("orgs", type_=ARRAY(Integer)))
_KEYS_OF = text(
    "SELECT i.contact_id, i.organization_id, i.kind, i.external_id, i.user_id"
    " FROM contact_identities i WHERE i.contact_id = ANY(:ids)"
    " UNION ALL SELECT c.id, c.organization_id, 'phone', c.phone, NULL"
    " FROM contacts c WHERE c.id = ANY(:ids) AND c.phone IS NOT NULL"
).bindparams(bindparam("ids", type_=ARRAY(Integer)))


class WroteOutsideKeys(AssertionError):
    """A unit wrote a contact or a conversation under a key it did not name."""


def wanted() -> bool:
    """Whether the environment asks for the check."""
    return os.environ.get(ENVIRONMENT, "") == "1"


class KeyCheck:
    """Follows one batch's transaction from run to run."""

    def __init__(self) -> None:
        self._seen: set[int] = set()

    async def after_run(
        self, session: AsyncSession, organization_ids: Collection[int], keys: Collection[Hashable]
    ) -> None:
        """Fail if a contact first written by the run just ended lies outside ``keys``."""
        connection = await session.connection()
        if connection.dialect.name != "postgresql":
            return
        written = set(
            (await connection.execute(_WRITTEN_CONTACTS, {"orgs": sorted(organization_ids)}))
            .scalars()
            .all()
        )
        new = sorted(written - self._seen)
        self._seen |= written
        if not new:
            return
        reachable: dict[int, set[Hashable]] = {}
        for contact_id, org_id, kind, external_id, user_id in await connection.execute(
            _KEYS_OF, {"ids": new}
        ):
            found = reachable.setdefault(contact_id, set())
            found.add((org_id, kind, external_id))
            if user_id:
                found.add((org_id, kind, user_id))
        outside = sorted(
            contact_id for contact_id, its in reachable.items() if its.isdisjoint(keys)
        )
        if outside:
            raise WroteOutsideKeys(
                f"wrote contacts {outside} (or their conversations) outside the keys it named"
            )
