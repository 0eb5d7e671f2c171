from __future__ import annotations

from datetime import UTC, datetime

from sqlmodel import func, select
from starlette.responses import Response

from ..errors import AuthenticationFailed, AuthorizationFailed, field_error
from ..models import Organization, User, utcnow
from ..ratelimit.middleware import spend_sign_in
from ..schemas.auth import (
    LoginRequest,
    LoginResponse,
    MeResponse,
    OrganizationPublic,
    PasswordChange,
    RefreshRequest,
    TokenResponse,
)
from ..schemas.users import UserPublic
from ..security import hash_password, issue_token, verify_password
from ..services import accounts, refresh_tokens
from ..settings import Settings
from ..web.endpoint import Context, Endpoints
from . import sessions

api = Endpoints("auth")

NO_SESSIONS_FOR_KEYS = (
    "An API key has no sessions to end: delete the key (DELETE /api/api-keys/{id}) to "
    "revoke it"
)
NO_SESSION_TO_END = (
    "This access token belongs to no session that can end alone (it was issued before "
    "sessions had refresh tokens): end every session with POST /api/auth/logout-all"
)


def _token_response(
    settings: Settings, user: User, family_id: int | None = None, ttl: int | None = None
) -> TokenResponse:
    assert user.id is not None
    ttl = settings.access_token_ttl if ttl is None else ttl
    token = issue_token(
        user_id=user.id,
        organization_id=user.organization_id,
        role=user.role,
        key=settings.signing_key,
        ttl_seconds=ttl,
        session_epoch=user.session_epoch,
        family_id=family_id,
    )
    return TokenResponse(access_token=token, expires_in=ttl, user=UserPublic.model_validate(user))


def _session_response(settings: Settings, issued: refresh_tokens.Issued) -> LoginResponse:
    now = datetime.now(UTC)
    # No access token outlives its session.
    left = int((issued.family_expires_at - now).total_seconds())
    ttl = max(1, min(settings.access_token_ttl, left))
    access = _token_response(settings, issued.user, issued.family_id, ttl)
    return LoginResponse(
        **access.model_dump(),
        refresh_token=issued.token,
        refresh_expires_in=max(0, int((issued.expires_at - now).total_seconds())),
        session_expires_at=issued.family_expires_at,
    )


@api.post(
    "/api/auth/login",
    summary="Exchange email and password for an access token and a refresh token",
    body=LoginRequest,
    response=LoginResponse,
    role=None,
)
async def login(ctx: Context[None, LoginRequest]) -> LoginResponse:
    """Starts a session: its access tokens and sockets last until it is signed out, ended
    with every session of the user, or reaches its maximum age, while the client
    refreshes (`POST /api/auth/refresh`)."""
    settings = ctx.state.settings
    # Per e-mail as well as per address: guessing one account's password stops too.
    await spend_sign_in(ctx.request, ctx.body.email.strip().lower())
    async with ctx.state.db.session() as session:
        email = ctx.body.email.strip().lower()
        user = (await session.exec(select(User).where(func.lower(User.email) == email))).first()
        ok = await verify_password(user.password_hash if user else None, ctx.body.password)
        if user is None or not ok or not user.is_active:
            raise AuthenticationFailed("Wrong email or password")
        user.last_login_at = utcnow()
        session.add(user)
        await session.commit()
    issued = await refresh_tokens.start_family(
        ctx.state.db, user, ttl=settings.refresh_ttl, max_seconds=settings.refresh_max
    )
    return _session_response(settings, issued)


@api.post(
    "/api/auth/refresh",
    summary="Exchange a refresh token for a new access token and the next refresh token",
    body=RefreshRequest,
    response=LoginResponse,
    role=None,
)
async def refresh(ctx: Context[None, RefreshRequest]) -> LoginResponse:
    """The refresh token is spent: each works once. A spent one presented again (two
    holders, or two refreshes racing) ends the whole session: every refresh token of it,
    the access tokens issued with it and its sockets (401, reason `reused`). Access tokens
    issued before a refresh keep working until they expire. 401 reasons: `invalid`
    (unknown), `expired` (the token or the session), `revoked` (signed out, ended with
    every session of the user, or its user deactivated), `reused`."""
    try:
        issued = await refresh_tokens.rotate(
            ctx.state.db, ctx.body.refresh_token, ttl=ctx.state.settings.refresh_ttl
        )
    except refresh_tokens.Reused as reused:
        if ctx.state.live is not None:
            await ctx.state.live.revoke_family(
                reused.organization_id, reused.user_id, reused.family_id
            )
        raise
    return _session_response(ctx.state.settings, issued)


@api.post(
    "/api/auth/logout",
    summary="Sign this session out: its refresh and access tokens stop and its sockets "
    "close (4401), on every server; the user's other sessions go on",
    errors=(403,),
    status=204,
    role="viewer",
)
async def logout(ctx: Context[None, None]) -> Response | None:
    """For an access token from `POST /api/auth/login` or `/api/auth/refresh`, its
    session; for the console's cookie, as `DELETE /api/auth/session`."""
    principal = ctx.principal
    if principal.session_id is not None:
        signed_out: Response = await sessions.sign_out(ctx)
        return signed_out
    if principal.family_id is None or principal.user_id is None:
        if principal.user_id is None:
            raise AuthorizationFailed(NO_SESSIONS_FOR_KEYS)
        raise AuthorizationFailed(NO_SESSION_TO_END)
    await refresh_tokens.sign_out(ctx.state.db, principal.family_id)
    if ctx.state.live is not None:
        await ctx.state.live.revoke_family(ctx.org_id, principal.user_id, principal.family_id)
    return None


@api.post(
    "/api/auth/logout-all",
    summary="Sign out everywhere: every access token, refresh token and socket of the "
    "caller stops, this one included",
    errors=(403,),
    status=204,
    role="viewer",
)
async def logout_everywhere(ctx: Context[None, None]) -> None:
    user = ctx.principal.user
    if user is None or user.id is None:
        raise AuthorizationFailed(NO_SESSIONS_FOR_KEYS)
    async with ctx.state.db.session(write=True) as session:
        epoch = await accounts.end_sessions(session, user.id)
        await session.commit()
    if ctx.state.live is not None:
        await ctx.state.live.revoke_user(ctx.org_id, user.id, epoch)


@api.post(
    "/api/auth/password",
    summary="Change the caller's password: every other session ends; the answer carries "
    "a new access token",
    body=PasswordChange,
    response=TokenResponse,
    role="viewer",
)
async def change_password(ctx: Context[None, PasswordChange]) -> TokenResponse:
    caller = ctx.principal.user
    if caller is None or caller.id is None:
        raise AuthorizationFailed("Only a user has a password: an API key cannot change one")
    if not await verify_password(caller.password_hash, ctx.body.current_password):
        raise field_error("current_password", "is not the current password")
    # Hashed before the transaction: Argon2 takes its time, the write lock must not.
    password_hash = await hash_password(ctx.body.new_password)
    async with ctx.state.db.session(write=True) as session:
        user = await session.get(User, caller.id)
        assert user is not None
        # A console or an API client changing its password stays signed in; the user's
        # other sessions end.
        epoch = await accounts.end_sessions(
            session,
            caller.id,
            keep_console_session=ctx.principal.session_id,
            keep_refresh_family=ctx.principal.family_id,
        )
        user.password_hash = password_hash
        user.updated_at = utcnow()
        session.add(user)
        await session.commit()
    # The ORM's copy predates the bump, which was made in SQL.
    user.session_epoch = epoch
    if ctx.state.live is not None:
        await ctx.state.live.revoke_user(
            ctx.org_id,
            caller.id,
            epoch,
            keep_session=ctx.principal.session_id,
            keep_family=ctx.principal.family_id,
        )
    # The caller's refresh token goes on working; the new access token joins its session.
    return _token_response(ctx.state.settings, user, ctx.principal.family_id)


@api.get(
    "/api/auth/me",
    summary="The caller: user (or API key) and organization",
    response=MeResponse,
    role="viewer",
)
async def me(ctx: Context[None, None]) -> MeResponse:
    async with ctx.state.db.session() as session:
        org = await session.get(Organization, ctx.org_id)
    assert org is not None
    user = ctx.principal.user
    return MeResponse(
        user=UserPublic.model_validate(user) if user else None,
        organization=OrganizationPublic.model_validate(org),
        role=ctx.principal.role,
        api_key_id=ctx.principal.api_key_id,
    )
