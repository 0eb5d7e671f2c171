from __future__ import annotations

import secrets

from ..errors import field_error
from ..models import Organization, utcnow
from ..schemas.auth import OrganizationPatch, OrganizationPublic
from ..services.analytics_ranges import zone_named
from ..web.endpoint import Context, Endpoints
from .common import apply_changes

api = Endpoints("organization")


@api.get(
    "/api/organization",
    summary="The caller's organization",
    response=OrganizationPublic,
    role="viewer",
)
async def get_organization(ctx: Context[None, None]) -> OrganizationPublic:
    async with ctx.state.db.session() as session:
        org = await session.get(Organization, ctx.org_id)
    return OrganizationPublic.model_validate(org)


@api.patch(
    "/api/organization",
    summary="Set the organization's time zone (admin) or rename it (owner)",
    body=OrganizationPatch,
    response=OrganizationPublic,
    role="admin",
)
async def update_organization(ctx: Context[None, OrganizationPatch]) -> OrganizationPublic:
    changes = ctx.body.model_dump(include=ctx.body_fields)
    if "name" in changes:
        ctx.principal.require("owner")
        if changes["name"] is None:
            raise field_error("name", "cannot be null")
    if "timezone" in changes:
        if changes["timezone"] is None:
            raise field_error("timezone", "cannot be null: UTC is a zone")
        zone_named(changes["timezone"])
    async with ctx.state.db.session() as session:
        org = await session.get(Organization, ctx.org_id)
        assert org is not None
        if apply_changes(org, changes):
            session.add(org)
            await session.commit()
    return OrganizationPublic.model_validate(org)


@api.post(
    "/api/organization/lead-form-key",
    summary="Create or rotate the publishable lead form key (admin); the old one stops working",
    response=OrganizationPublic,
    role="admin",
)
async def rotate_lead_form_key(ctx: Context[None, None]) -> OrganizationPublic:
    async with ctx.state.db.session() as session:
        org = await session.get(Organization, ctx.org_id)
        assert org is not None
        org.lead_form_key = "lf_" + secrets.token_urlsafe(24)
        org.updated_at = utcnow()
        session.add(org)
        await session.commit()
    return OrganizationPublic.model_validate(org)
