from __future__ import annotations

from sqlmodel import func, select

from ..errors import AuthenticationFailed
from ..models import Organization, User, utcnow
from ..schemas.auth import LoginRequest, MeResponse, OrganizationPublic, TokenResponse
from ..schemas.users import UserPublic
from ..security import issue_token, verify_password
from ..web.endpoint import Context, Endpoints

api = Endpoints("auth")


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
    assert user.id is not None
    token = issue_token(
        user_id=user.id,
        organization_id=user.organization_id,
        role=user.role,
        key=settings.signing_key,
        ttl_seconds=settings.access_token_ttl,
    )
    return TokenResponse(
        access_token=token,
        expires_in=settings.access_token_ttl,
        user=UserPublic.model_validate(user),
    )


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
