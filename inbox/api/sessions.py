"""The console's sign-in and sign-out: a session cookie, never a token a script can read."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field
from sqlmodel import func, select
from starlette.responses import Response

from ..auth import as_role
from ..errors import AuthenticationFailed, AuthorizationFailed
from ..models import Organization, User, utcnow
from ..ratelimit.middleware import spend_sign_in
from ..schemas.auth import LoginRequest, OrganizationPublic
from ..schemas.common import Output
from ..schemas.users import RoleName, UserPublic
from ..security import verify_password
from ..services import console_sessions
from ..web.endpoint import Context, Endpoints, json_response

api = Endpoints("auth")

NOT_A_CONSOLE_SESSION = (
    "This request was not made with a console session: an access token ends with "
    "POST /api/auth/logout-all, an API key by deleting it"
)


class SessionResponse(Output):
    user: UserPublic
    organization: OrganizationPublic
    role: RoleName
    expires_at: datetime = Field(
        description="When the session ends whatever its use (INBOX_SESSION_MAX after sign-in); "
        "before that it ends once unused for INBOX_SESSION_IDLE seconds"
    )


@api.post(
    "/api/auth/session",
    summary="Sign the console in: sets an HttpOnly session cookie that slides while used",
    body=LoginRequest,
    response=SessionResponse,
    role=None,
    errors=(401, 403),
)
async def sign_in(ctx: Context[None, LoginRequest]) -> Response:
    """The cookie (`inbox_session`, HttpOnly, SameSite=Strict, Secure behind https)
    authenticates requests that carry `X-Inbox-Client: console` from this origin."""
    settings = ctx.state.settings
    console_sessions.check_origin(ctx.request.headers, ctx.request.url.scheme, settings.public_url)
    # Per e-mail as well as per address: guessing one account's password stops too.
    await spend_sign_in(ctx.request, ctx.body.email.strip().lower())
    async with ctx.state.db.session(write=True) as session:
        email = ctx.body.email.strip().lower()
        user = (await session.exec(select(User).where(func.lower(User.email) == email))).first()
        ok = await verify_password(user.password_hash if user else None, ctx.body.password)
        if user is None or not ok or not user.is_active:
            raise AuthenticationFailed("Wrong email or password")
        user.last_login_at = utcnow()
        session.add(user)
        await session.commit()
        org = await session.get(Organization, user.organization_id)
    assert user.id is not None and org is not None
    row, token = await console_sessions.sign_in(
        ctx.state.db,
        user.id,
        max_seconds=settings.session_max,
        user_agent=ctx.request.headers.get("user-agent"),
    )
    answer = SessionResponse(
        user=UserPublic.model_validate(user),
        organization=OrganizationPublic.model_validate(org),
        role=as_role(user.role),
        expires_at=row.expires_at,
    )
    response = json_response(answer)
    secure = console_sessions.secure_cookies(settings.public_url, ctx.request.url.scheme)
    response.headers.append(
        "set-cookie", console_sessions.cookie_header(token, settings.session_max, secure=secure)
    )
    return response


@api.delete(
    "/api/auth/session",
    summary="Sign the console out: the session ends on every server, its sockets close "
    "(4401) and the cookie is cleared",
    errors=(403,),
    role="viewer",
)
async def sign_out(ctx: Context[None, None]) -> Response:
    principal = ctx.principal
    if principal.session_id is None or principal.user_id is None:
        raise AuthorizationFailed(NOT_A_CONSOLE_SESSION)
    await console_sessions.sign_out(ctx.state.db, principal.session_id)
    ctx.state.auth.forget_session(principal.session_id)
    if ctx.state.live is not None:
        await ctx.state.live.revoke_session(ctx.org_id, principal.user_id, principal.session_id)
    response = Response(status_code=204)
    secure = console_sessions.secure_cookies(ctx.state.settings.public_url, ctx.request.url.scheme)
    response.headers.append("set-cookie", console_sessions.cleared_cookie_header(secure=secure))
    return response
