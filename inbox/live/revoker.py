"""Closing the sockets of revoked credentials: at once when a process says so over the
broker's control channel, and within seconds when the database says so."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from sqlalchemy.exc import SQLAlchemyError

from realtime.control import Control
from realtime.hub import CLOSE_UNAUTHORIZED, Connection, Hub

from ..auth import Authenticator
from .revocation import CredentialCheck, Subject, parse_subject

log = logging.getLogger("inbox.live")

# The instructions' kinds on the broker's control channel: a user's sessions or a key
# revoked; one console session signed out (a kind of its own, which a process of an
# earlier release ignores rather than take for every session of the user).
REVOKED = "session.revoked"
CONSOLE_SESSION_ENDED = "console_session.ended"
# One API client's session (a refresh family) ended: signed out, or a token reused.
REFRESH_FAMILY_ENDED = "refresh_family.ended"
# How often each process checks the credentials its sockets were opened with against
# the database: the bound on a revocation the broker did not carry (it was down, or the
# change came from the command line or by hand).
RECHECK_EVERY_SECONDS = 5.0
# An organization whose last socket closed is still looked at for this long: a socket
# is registered a moment after its credential was checked.
RECHECK_LINGER_SECONDS = 60.0
STORAGE_ERRORS = (SQLAlchemyError, OSError, TimeoutError)

Instruct = Callable[[Control], Awaitable[None]]


class Revoker:
    def __init__(
        self, hub: Hub, auth: Authenticator, credentials: CredentialCheck, instruct: Instruct
    ) -> None:
        self.hub = hub
        self.auth = auth
        self.credentials = credentials
        self._instruct = instruct
        # Organizations that had a socket here lately: what the recheck looks at.
        self._organizations: dict[int, float] = {}
        self._failing = False

    def watch(self, org_id: int) -> None:
        """A socket of the organization is about to open here."""
        self._organizations[org_id] = time.monotonic()

    async def revoke_user(
        self,
        org_id: int,
        user_id: int,
        epoch: int,
        keys: Sequence[int] = (),
        keep_session: int | None = None,
        keep_family: int | None = None,
    ) -> None:
        self._user_revoked(org_id, user_id, epoch, keys, keep_session, keep_family)
        data: dict[str, object] = {
            "subject": Subject("user", user_id).text,
            "epoch": epoch,
            "keys": list(keys),
        }
        if keep_session is not None:
            data["keep_session"] = keep_session
        if keep_family is not None:
            data["keep_family"] = keep_family
        await self._instruct(Control(REVOKED, org_id, data))

    async def revoke_key(self, org_id: int, api_key_id: int) -> None:
        self._key_revoked(org_id, api_key_id)
        await self._instruct(Control(REVOKED, org_id, {"subject": f"key:{api_key_id}"}))

    async def revoke_session(self, org_id: int, user_id: int, session_id: int) -> None:
        self._session_ended(org_id, session_id)
        data = {"session": session_id, "user": user_id}
        await self._instruct(Control(CONSOLE_SESSION_ENDED, org_id, data))

    async def revoke_family(self, org_id: int, user_id: int, family_id: int) -> None:
        self._family_ended(org_id, family_id)
        data = {"family": family_id, "user": user_id}
        await self._instruct(Control(REFRESH_FAMILY_ENDED, org_id, data))

    def instructed(self, control: Control) -> None:
        """Carry out a revocation said by any process, this one included."""
        if control.kind == REFRESH_FAMILY_ENDED:
            family_id = control.data.get("family")
            if type(family_id) is not int:
                log.warning("ignoring a malformed %s instruction", control.kind)
                return
            self._family_ended(control.organization_id, family_id)
            return
        if control.kind == CONSOLE_SESSION_ENDED:
            session_id = control.data.get("session")
            if type(session_id) is not int:
                log.warning("ignoring a malformed %s instruction", control.kind)
                return
            self._session_ended(control.organization_id, session_id)
            return
        if control.kind != REVOKED:
            log.warning("ignoring an instruction of unknown kind %r", control.kind)
            return
        try:
            subject = parse_subject(str(control.data["subject"]))
            keys = [int(k) for k in control.data.get("keys", ())]
            epoch = control.data.get("epoch")
            kept = control.data.get("keep_session")
            kept_family = control.data.get("keep_family")
        except (KeyError, TypeError, ValueError):
            log.warning("ignoring a malformed %s instruction", control.kind)
            return
        if subject.kind == "key":
            self._key_revoked(control.organization_id, subject.id)
        else:
            # Without an epoch: every session of the user.
            below = epoch if type(epoch) is int else None
            keep = kept if type(kept) is int else None
            keep_family = kept_family if type(kept_family) is int else None
            self._user_revoked(
                control.organization_id, subject.id, below, keys, keep, keep_family
            )

    def _user_revoked(
        self,
        org_id: int,
        user_id: int,
        below: int | None,
        keys: Sequence[int],
        keep_session: int | None = None,
        keep_family: int | None = None,
    ) -> None:
        self.auth.forget_owner(user_id)
        for key_id in keys:
            self._key_revoked(org_id, key_id)

        def ended(subject: Subject) -> bool:
            return (
                subject.kind == "user"
                and subject.id == user_id
                and (below is None or subject.epoch < below)
                # The console that changed its password stays signed in, sockets too.
                and (keep_session is None or subject.session != keep_session)
                # So does the API client's session that changed it.
                and (keep_family is None or subject.family != keep_family)
            )

        self._close(org_id, ended)

    def _session_ended(self, org_id: int, session_id: int) -> None:
        self.auth.forget_session(session_id)
        self._close(org_id, lambda subject: subject.session == session_id)

    def _family_ended(self, org_id: int, family_id: int) -> None:
        # Nothing to forget: access tokens read their family on every request.
        self._close(org_id, lambda subject: subject.family == family_id)

    def _key_revoked(self, org_id: int, api_key_id: int) -> None:
        self.auth.forget_key(api_key_id)
        self._close(org_id, lambda subject: subject.kind == "key" and subject.id == api_key_id)

    def _close(self, org_id: int, which: Callable[[Subject], bool]) -> None:
        for connection in self.hub.connections(org_id):
            subject = subject_of_connection(connection)
            if subject is not None and which(subject):
                connection.close(CLOSE_UNAUTHORIZED)

    async def recheck(self) -> int:
        """Close the local sockets whose credential was revoked, as the database says
        now; answer how many."""
        now = time.monotonic()
        held: list[tuple[Connection, Subject]] = []
        for org_id, seen in list(self._organizations.items()):
            connections = self.hub.connections(org_id)
            if not connections and now - seen > RECHECK_LINGER_SECONDS:
                del self._organizations[org_id]
            for connection in connections:
                subject = subject_of_connection(connection)
                if subject is not None and not connection.closing:
                    held.append((connection, subject))
        if not held:
            return 0
        revoked = await self.credentials.revoked(
            [(connection.organization_id, subject) for connection, subject in held]
        )
        closed = 0
        for connection, subject in held:
            if (connection.organization_id, subject) in revoked:
                connection.close(CLOSE_UNAUTHORIZED)
                closed += 1
        if closed:
            log.info("closed %d sockets whose credentials were revoked", closed)
        return closed

    async def recheck_forever(self) -> None:
        while True:
            await asyncio.sleep(RECHECK_EVERY_SECONDS)
            await self.recheck_once()

    async def recheck_once(self) -> None:
        try:
            await self.recheck()
            self._failing = False
        except STORAGE_ERRORS:
            # Logged once per outage: it runs every few seconds.
            if not self._failing:
                log.warning("checking open sockets' credentials failed", exc_info=True)
                self._failing = True
        except Exception:
            log.exception("checking open sockets' credentials failed")


def subject_of_connection(connection: Connection) -> Subject | None:
    if connection.subject is None:
        return None
    try:
        return parse_subject(connection.subject)
    except ValueError:
        return None
