from __future__ import annotations

from sqlmodel import func, select

from ..errors import AuthenticationFailed, AuthorizationFailed, field_error
from ..models import Organization, User, utcnow
from ..schemas.auth import (
    LoginRequest,
    MeResponse,
    OrganizationPublic,
    PasswordChange,
    TokenResponse,
)
from ..schemas.users import UserPublic
from ..security import hash_password, issue_token, verify_password
from ..services import accounts
from ..settings import Settings
from ..web.endpoint import Context, Endpoints

api = Endpoints("auth")

NO_SESSIONS_FOR_KEYS = (
    "An API key has no sessions to end: delete the key (DELETE /api/api-keys/{id}) to "
    "revoke it"
)


def _token_response(settings: Settings, user: User) -> TokenResponse:
    assert user.id is not None
    token = issue_token(
        user_id=user.id,
        organization_id=user.organization_id,
        role=user.role,
        key=settings.signing_key,
        ttl_seconds=settings.access_token_ttl,
        session_epoch=user.session_epoch,
    )
    return TokenResponse(
        access_token=token,
        expires_in=settings.access_token_ttl,
        user=UserPublic.model_validate(user),
    )


@api.post(
    "/api/auth/login",
    summary="Exchange email and password for an access token",
    body=LoginRequest,
    response=TokenResponse,
    role=None,
)
async def login(ctx: Context[None, LoginRequest]) -> TokenResponse:
    settings = ctx.state.settings
    async with ctx.state.db.session() as session:
        email = ctx.body.email.strip().lower()
        user = (await session.exec(select(User).where(func.lower(User.email) == email))).first()
        ok = await verify_password(user.password_hash if user else None, ctx.body.password)
        if user is None or not ok or not user.is_active:
            raise AuthenticationFailed("Wrong email or password")
        user.last_login_at = utcnow()
        session.add(user)
        await session.commit()
    return _token_response(settings, user)


@api.post(
    "/api/auth/logout-all",
    summary="Sign out everywhere: every access token and socket of the caller stops, this "
    "one included",
    errors=(403,),
    status=204,
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
        # A console changing its password stays signed in; the user's other sessions end.
        epoch = await accounts.end_sessions(
            session, caller.id, keep_console_session=ctx.principal.session_id
        )
        user.password_hash = password_hash
        user.updated_at = utcnow()
        session.add(user)
        await session.commit()
    # The ORM's copy predates the bump, which was made in SQL.
    user.session_epoch = epoch
    if ctx.state.live is not None:
        await ctx.state.live.revoke_user(
            ctx.org_id, caller.id, epoch, keep_session=ctx.principal.session_id
        )
    return _token_response(ctx.state.settings, user)


@api.get(
    "/api/auth/me", summary="The caller: user (or API key) and organization", response=MeResponse
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
