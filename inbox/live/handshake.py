"""Who may open a socket: tickets, tokens and keys checked by the rules REST uses."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import HTTPConnection

from realtime.endpoint import HandshakeRefused, Session
from realtime.hub import Hub

from ..auth import (
    Authenticator,
    Principal,
    api_key_principal,
    check_scope,
    credentials_from_headers,
    user_principal,
)
from ..db import Database
from ..errors import ApiError, AuthenticationFailed, ServiceUnavailable
from ..ratelimit.sockets import SocketSlots
from ..services import console_sessions, refresh_tokens
from ..settings import Settings
from .revocation import subject_of
from .tickets import (
    UsedTickets,
    credential_expired_ticket,
    issue_ticket,
    read_ticket,
    revoked_ticket,
    used_ticket,
)

log = logging.getLogger("inbox.live")

STORAGE_ERRORS = (SQLAlchemyError, OSError, TimeoutError)
HANDSHAKE_UNAVAILABLE = (
    "Cannot check credentials now: the database does not answer; try again shortly"
)


class Handshake:
    """The endpoint's ``authenticate``; ``admitted`` hears of each organization let in."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        auth: Authenticator,
        admitted: Callable[[int], None],
        hub: Hub | None = None,
    ) -> None:
        self.settings = settings
        # The sockets a credential holds here, against INBOX_MAX_SOCKETS_PER_USER (the
        # socket cap is on when the hub is given).
        self.hub = hub
        self.slots = SocketSlots() if hub is not None else None
        self.db = db
        self.auth = auth
        self.used_tickets = UsedTickets(db, session_idle=settings.session_idle)
        self._admitted = admitted

    def ticket_for(self, principal: Principal) -> dict[str, Any]:
        ticket, lifetime = issue_ticket(self.settings.signing_key, principal)
        return {"ticket": ticket, "expires_in": lifetime}

    async def __call__(self, conn: HTTPConnection) -> Session:
        query = conn.query_params
        try:
            if "ticket" in query:
                principal = await self._redeem(query["ticket"])
            else:
                credential = credentials_from_headers(
                    conn.headers.get("authorization"), conn.headers.get("x-api-key")
                ) or query.get("token")
                principal = await self.auth.authenticate(credential)
                if principal.family_id is not None:
                    principal = await self._for_family(principal, principal.family_id)
        except STORAGE_ERRORS as exc:
            # A clear refusal the client may retry, not a 500.
            log.warning("refusing a handshake: %s", exc.__class__.__name__)
            unavailable = ServiceUnavailable(HANDSHAKE_UNAVAILABLE)
            raise HandshakeRefused(unavailable.code, unavailable.message, status=503) from None
        except ServiceUnavailable as exc:
            raise HandshakeRefused(exc.code, exc.message, exc.details, status=503) from None
        except ApiError as exc:
            # REST's code, words and details; the status stays the documented 403.
            raise HandshakeRefused(exc.code, exc.message, exc.details) from None
        if self.slots is not None:
            # Taken here, with no wait before the count it checks; CloseWhenCapped gives
            # it back when the socket ends, or when the handshake is refused after this.
            self.slots.take(conn.scope, principal, self.settings.max_sockets_per_user)
        self._admitted(principal.organization_id)
        user = principal.user
        return Session(
            organization_id=principal.organization_id,
            user=(
                {"id": user.id, "email": user.email, "name": user.name, "role": user.role}
                if user is not None
                else {"api_key_id": principal.api_key_id, "role": principal.role}
            ),
            # A viewer (a dashboard, a wall screen) is no agent: never online, never typing.
            user_id=principal.user_id if principal.role != "viewer" else None,
            expires_at=principal.expires_at,
            subject=subject_of(principal),
        )

    async def _for_family(self, principal: Principal, family_id: int) -> Principal:
        # An API client's socket outlives the access token it was opened with while its
        # session (the refresh family) refreshes: the credential check closes it once the
        # family's newest access token has lapsed, and the family's limit bounds it all.
        lasts = await refresh_tokens.family_lasts_until(
            self.db, family_id, principal.organization_id
        )
        return replace(principal, expires_at=lasts)

    async def _redeem(self, ticket: str) -> Principal:
        claims = read_ticket(self.settings.signing_key, ticket)
        now = datetime.now(UTC)
        lapses = claims.credential_expires_at
        if lapses is not None and lapses <= now:
            raise credential_expired_ticket()
        if claims.user_id is None and claims.api_key_id is None:
            raise revoked_ticket()
        if not await self.used_tickets.first_use(claims.ticket_id, claims.expires_at):
            raise used_ticket()
        # A ticket's session lasts as a fresh access token would, and never past the
        # credential it was minted from.
        expires_at = now + timedelta(seconds=self.settings.access_token_ttl)
        if lapses is not None:
            expires_at = min(expires_at, lapses)
        org_id = claims.organization_id
        # The credential must still stand by the rules REST applies to it.
        try:
            if claims.user_id is not None and claims.session_id is not None:
                # A console session's socket lives until the session ends or reaches its
                # absolute limit: its use of the console slides the idle one on.
                expires_at = await console_sessions.session_lasts_until(
                    self.db, claims.session_id, org_id
                )
                found = await user_principal(
                    self.db, claims.user_id, org_id, claims.session_epoch, expires_at
                )
                return replace(found, session_id=claims.session_id)
            if claims.user_id is not None:
                found = await user_principal(
                    self.db,
                    claims.user_id,
                    org_id,
                    claims.session_epoch,
                    expires_at,
                    family_id=claims.family_id,
                )
                if claims.family_id is not None:
                    return await self._for_family(found, claims.family_id)
                return found
            assert claims.api_key_id is not None
            found = await api_key_principal(self.db, claims.api_key_id, org_id)
        except AuthenticationFailed as exc:
            if exc.details.get("reason") == "expired":
                raise credential_expired_ticket() from None
            raise revoked_ticket() from None
        check_scope(found, "api")
        return replace(found, expires_at=expires_at)
