"""What a socket was opened with, and whether the database still stands behind it.

A socket's subject names its credential: ``user:<id>:<session epoch>``, with
``:<console session id>`` after it for a socket the console opened and
``:<console session id or 0>:<refresh family id>`` for one an API client's session
opened, or ``key:<id>``.
Revocations over the broker close sockets at once; this check is the bound for those
the broker did not carry.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeVar

from sqlalchemy import Select, bindparam, func, select
from sqlmodel import col

from ..auth import Principal
from ..db import Database
from ..models import ApiKey, ConsoleSession, RefreshFamily, RefreshToken, User

Kind = Literal["user", "key"]

# Ids per query: well within what either database takes as bound parameters.
CHUNK = 500

T = TypeVar("T")


@dataclass(frozen=True)
class Subject:
    kind: Kind
    id: int
    # A user's session epoch when the socket's credential was issued; 0 for keys.
    epoch: int = 0
    # The console session a user's ticket came from; 0 for none.
    session: int = 0
    # The refresh family a user's access token was issued in; 0 for none.
    family: int = 0

    @property
    def text(self) -> str:
        if self.kind == "user" and self.family:
            return f"user:{self.id}:{self.epoch}:{self.session}:{self.family}"
        if self.kind == "user" and self.session:
            return f"user:{self.id}:{self.epoch}:{self.session}"
        if self.kind == "user" and self.epoch:
            return f"user:{self.id}:{self.epoch}"
        return f"{self.kind}:{self.id}"


def parse_subject(text: str) -> Subject:
    """A subject's text back; ValueError for anything else."""
    kind, _, rest = text.partition(":")
    id_text, _, rest = rest.partition(":")
    epoch_text, _, rest = rest.partition(":")
    session_text, _, family_text = rest.partition(":")
    if kind not in ("user", "key") or not id_text.isdigit():
        raise ValueError(f"not a subject: {text!r}")
    if epoch_text and (kind != "user" or not epoch_text.isdigit()):
        raise ValueError(f"not a subject: {text!r}")
    for part in (session_text, family_text):
        if part and not part.isdigit():
            raise ValueError(f"not a subject: {text!r}")
    return Subject(
        "user" if kind == "user" else "key",
        int(id_text),
        int(epoch_text or 0),
        int(session_text or 0),
        int(family_text or 0),
    )


def subject_of(principal: Principal) -> str:
    """What a socket is held by, as revocations name it: the user and the session epoch
    of its credential, or the API key."""
    if principal.user_id is not None:
        epoch = principal.session_epoch or 0
        session, family = principal.session_id or 0, principal.family_id or 0
        return Subject("user", principal.user_id, epoch, session, family).text
    assert principal.api_key_id is not None
    return Subject("key", principal.api_key_id).text


_USERS = select(
    col(User.id), col(User.organization_id), col(User.is_active), col(User.session_epoch)
).where(col(User.id).in_(bindparam("ids", expanding=True)))
_KEYS: Select[*tuple[Any, ...]] = (
    select(
        col(ApiKey.id),
        col(ApiKey.organization_id),
        col(ApiKey.expires_at),
        col(ApiKey.owner_id),
        col(User.is_active).label("owner_active"),
    )
    .outerjoin(User, col(User.id) == col(ApiKey.owner_id))
    .where(col(ApiKey.id).in_(bindparam("ids", expanding=True)))
)
# When the family last handed out an access token: its newest refresh token was made
# with it (a login or a refresh).
_REFRESHED = (
    select(func.max(col(RefreshToken.created_at)))
    .where(col(RefreshToken.family_id) == col(RefreshFamily.id))
    .scalar_subquery()
)
_FAMILIES = select(
    col(RefreshFamily.id),
    col(RefreshFamily.ended_at),
    col(RefreshFamily.expires_at),
    _REFRESHED.label("refreshed_at"),
).where(col(RefreshFamily.id).in_(bindparam("ids", expanding=True)))
_SESSIONS = select(
    col(ConsoleSession.id), col(ConsoleSession.ended_at), col(ConsoleSession.expires_at)
).where(col(ConsoleSession.id).in_(bindparam("ids", expanding=True)))


class CredentialCheck:
    def __init__(self, db: Database, *, access_token_ttl: float = 3600) -> None:
        self.db = db
        # A refresh family's socket lasts while the family's newest access token does:
        # it is opened with one, and kept open by the refreshes that hand out the next.
        self.access_token_ttl = timedelta(seconds=access_token_ttl)

    async def revoked(self, held: Sequence[tuple[int, Subject]]) -> set[tuple[int, Subject]]:
        """Of (organization, subject) pairs, those whose credential no longer stands: a
        user deactivated, moved or with a newer session epoch; a key deleted, expired or
        whose owner is deactivated; a console session ended or past its absolute limit
        or a refresh family ended, past its limit or no longer refreshed (its newest
        access token lapsed) (its session or family, not the epoch, says for a socket one
        of them opened)."""
        users = sorted({s.id for _, s in held if s.kind == "user"})
        keys = sorted({s.id for _, s in held if s.kind == "key"})
        sessions = sorted({s.session for _, s in held if s.session})
        families = sorted({s.family for _, s in held if s.family})
        standing_sessions: set[int] = set()
        standing_families: set[int] = set()
        # (kind, id) -> (organization, the user's epoch), for the credentials that stand.
        standing: dict[tuple[Kind, int], tuple[int, int]] = {}
        now = datetime.now(UTC)
        async with self.db.engine.connect() as connection:
            for ids in _chunks(users):
                for row in await connection.execute(_USERS, {"ids": ids}):
                    if row.is_active:
                        standing["user", row.id] = (row.organization_id, row.session_epoch)
            for ids in _chunks(keys):
                for row in await connection.execute(_KEYS, {"ids": ids}):
                    expired = row.expires_at is not None and row.expires_at <= now
                    suspended = row.owner_id is not None and not row.owner_active
                    if not expired and not suspended:
                        standing["key", row.id] = (row.organization_id, 0)
            for ids in _chunks(sessions):
                for found in await connection.execute(_SESSIONS, {"ids": ids}):
                    if found.ended_at is None and found.expires_at > now:
                        standing_sessions.add(found.id)
            for ids in _chunks(families):
                for family in await connection.execute(_FAMILIES, {"ids": ids}):
                    refreshed = family.refreshed_at
                    if (
                        family.ended_at is None
                        and family.expires_at > now
                        and refreshed is not None
                        and refreshed + self.access_token_ttl > now
                    ):
                        standing_families.add(family.id)

        def stands(org_id: int, subject: Subject) -> bool:
            found = standing.get((subject.kind, subject.id))
            if found is None or found[0] != org_id:
                return False
            if subject.session:
                # Every end of the user's sessions ends their console sessions, but the
                # one that changed the password, whose sockets stay: the session says.
                return subject.session in standing_sessions
            if subject.family:
                # Likewise the API client's session that changed the password.
                return subject.family in standing_families
            return found[1] == subject.epoch

        return {(org_id, subject) for org_id, subject in held if not stands(org_id, subject)}


def _chunks(ids: Sequence[T]) -> Iterator[list[T]]:
    for start in range(0, len(ids), CHUNK):
        yield list(ids[start : start + CHUNK])
