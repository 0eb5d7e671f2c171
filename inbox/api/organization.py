from __future__ import annotations

from ..models import Organization
from ..schemas.auth import OrganizationPatch, OrganizationPublic
from ..web.endpoint import Context, Endpoints
from .common import apply_changes, get_owned

api = Endpoints("organization")


async def _get(ctx: Context[None, None]) -> OrganizationPublic:
    async with ctx.state.db.session() as session:
        org = await session.get(Organization, ctx.org_id)
    return OrganizationPublic.model_validate(org)


@api.get("/api/organization", summary="The caller's organization", response=OrganizationPublic)
async def get_organization(ctx: Context[None, None]) -> OrganizationPublic:
    return await _get(ctx)


@api.patch(
    "/api/organization",
    summary="Rename the organization (owner)",
    body=OrganizationPatch,
    response=OrganizationPublic,
    role="owner",
)
async def update_organization(ctx: Context[None, OrganizationPatch]) -> OrganizationPublic:
    async with ctx.state.db.session() as session:
        org = await session.get(Organization, ctx.org_id)
        assert org is not None
        if apply_changes(org, ctx.body.model_dump(include=ctx.body_fields)):
            session.add(org)
            await session.commit()
    return OrganizationPublic.model_validate(org)


__all__ = ["api", "get_owned"]
