"""What a platform tells about the people behind identities: their profile name, their
second id, and that they moved to another number or id.

A contact's name follows its profile name until someone names the contact otherwise:
an agent's choice is never overwritten, and every name a platform gave before stays
in the identity's ``former_names``. A changed number adds the new identity to the
same contact and keeps the old one (``replaced_at``), so that messages from either
reach the same person.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from connectors.phones import to_e164
from connectors.types import IdentityChange

from ..events import EventType
from ..models import Contact, ContactIdentity, utcnow
from ..views import contact_data
from .leads import insert_lead
from .timestamps import utc_text

if TYPE_CHECKING:
    from .arrival import ArrivalRun

log = logging.getLogger("inbox.ingest")


def has_news(
    identity_name: str | None, identity_user_id: str | None, name: str | None, user_id: str | None
) -> bool:
    """Whether a message tells something its sender's identity does not record yet."""
    return bool(name and name != identity_name) or bool(user_id and user_id != identity_user_id)


@dataclass(eq=False, slots=True)
class ContactState:
    """A sender's contact, and what their identity records."""

    id: int
    name: str | None
    profile_name: str | None = None
    user_id: str | None = None

    def has_news(self, name: str | None, user_id: str | None) -> bool:
        return has_news(self.profile_name, self.user_id, name, user_id)


async def new_sender(
    run: ArrivalRun,
    kind: str,
    sender_id: str,
    name: str | None,
    phone: str | None,
    user_id: str | None,
    make_lead: bool,
) -> ContactState:
    """A first-time sender's identity: on the contact of the same person known by
    another id of theirs, or by the same E.164 phone on another channel, or on a new
    contact (and, with ``make_lead``, a lead). IntegrityError when another arrival from
    the same sender got here first."""
    session = run.session
    contact = None
    # A person known by another id of theirs: a user who now hides their number.
    alias = await by_user_id(session, run.org_id, kind, [i for i in (sender_id, user_id) if i])
    if alias is not None:
        contact = await session.get(Contact, alias.contact_id, with_for_update=True)
    if contact is None and phone:
        contact = (
            await session.exec(
                select(Contact)
                .where(col(Contact.organization_id) == run.org_id, col(Contact.phone) == phone)
                .order_by(col(Contact.id))
                .limit(1)
                .with_for_update()
            )
        ).first()
    created = contact is None
    if contact is None:
        contact = Contact(organization_id=run.org_id, name=name, phone=phone, status="lead")
        session.add(contact)
        await session.flush()
    assert contact.id is not None
    identity = ContactIdentity(
        organization_id=run.org_id,
        contact_id=contact.id,
        kind=kind,
        external_id=sender_id,
        profile_name=name,
        user_id=user_id if user_id != sender_id else None,
    )
    session.add(identity)
    # The identity's unique key is what fails when another arrival from the same
    # sender got here first: only after it holds are there a lead to make and events
    # to tell.
    await session.flush()
    if created and make_lead:
        await insert_lead(
            session,
            organization_id=run.org_id,
            emit=run.tell,
            contact_id=contact.id,
            name=name or phone or sender_id,
            phone=phone,
            source=kind,
        )
    if created:
        run.tell(EventType.CONTACT_CREATED, contact_data(contact))
    return ContactState(contact.id, contact.name, identity.profile_name, identity.user_id)


async def note_identity(
    run: ArrivalRun,
    known: ContactState,
    kind: str,
    sender_id: str,
    name: str | None,
    user_id: str | None,
    at: datetime,
) -> None:
    """Record a new profile name or user id on the sender's identity; rename the
    contact when its name is still the one the platform gave."""
    if not known.has_news(name, user_id):
        return
    session = run.session
    identity = await _identity(session, run.org_id, kind, sender_id)
    contact = await session.get(Contact, known.id)
    assert identity is not None and contact is not None
    renamed = False
    if name and name != identity.profile_name:
        previous = identity.profile_name
        if previous:
            until = utc_text(at)
            identity.former_names = [*identity.former_names, {"name": previous, "until": until}]
        # An identity recorded before names were kept has none: the contact's name may
        # be an agent's, so only an empty one is filled then.
        if not contact.name or (previous is not None and contact.name == previous):
            contact.name = name
            renamed = True
        identity.profile_name = name
    if user_id and user_id != identity.user_id:
        identity.user_id = user_id
    session.add(identity)
    if renamed:
        contact.updated_at = utcnow()
        session.add(contact)
    await session.flush()
    known.name, known.profile_name, known.user_id = (
        contact.name,
        identity.profile_name,
        identity.user_id,
    )
    if renamed:
        run.tell(EventType.CONTACT_UPDATED, contact_data(contact))


async def by_user_id(
    session: AsyncSession, org_id: int, kind: str, user_ids: list[str]
) -> ContactIdentity | None:
    """The identity that records one of ``user_ids`` as its person's second id."""
    if not user_ids:
        return None
    return (
        await session.exec(
            select(ContactIdentity)
            .where(
                col(ContactIdentity.organization_id) == org_id,
                col(ContactIdentity.kind) == kind,
                col(ContactIdentity.user_id).in_(user_ids),
            )
            .order_by(col(ContactIdentity.id))
            .limit(1)
        )
    ).first()


async def move_identity(run: ArrivalRun, event: IdentityChange) -> None:
    if event.id_kind == "user_id":
        await _move_user_id(run, event)
    else:
        await _move_number(run, event)


async def _move_user_id(run: ArrivalRun, event: IdentityChange) -> None:
    identity = await by_user_id(
        run.session, run.org_id, event.platform, [event.old_id, event.new_id]
    )
    if identity is None:
        # Nobody here was known by that user id: there is nothing to move.
        run.result.ignored += 1
        return
    if identity.user_id == event.new_id:
        run.result.duplicates += 1
        return
    identity.user_id = event.new_id
    run.session.add(identity)
    await run.session.flush()
    run.result.updated += 1
    contact = await run.session.get(Contact, identity.contact_id)
    if contact is not None:
        run.tell(EventType.CONTACT_UPDATED, contact_data(contact))


async def _identity(
    session: AsyncSession, org_id: int, kind: str, external_id: str
) -> ContactIdentity | None:
    return (
        await session.exec(
            select(ContactIdentity).where(
                col(ContactIdentity.organization_id) == org_id,
                col(ContactIdentity.kind) == kind,
                col(ContactIdentity.external_id) == external_id,
            )
        )
    ).first()


async def _move_number(run: ArrivalRun, event: IdentityChange) -> None:
    session = run.session
    old = await _identity(session, run.org_id, event.platform, event.old_id)
    if old is None:
        run.result.ignored += 1
        return
    contact = await session.get(Contact, old.contact_id, with_for_update=True)
    assert contact is not None
    new = await _identity(session, run.org_id, event.platform, event.new_id)
    if new is not None:
        if new.contact_id != old.contact_id:
            # The new number wrote to us before the notice came and is a contact of its
            # own: two people's records are not merged behind an agent's back.
            log.info(
                "contact %s changed number to one contact %s has already",
                old.contact_id,
                new.contact_id,
            )
        run.result.duplicates += 1
        return
    try:
        async with session.begin_nested():
            session.add(
                ContactIdentity(
                    organization_id=run.org_id,
                    contact_id=old.contact_id,
                    kind=event.platform,
                    external_id=event.new_id,
                    profile_name=old.profile_name,
                )
            )
            await session.flush()
    except IntegrityError:
        # A first message from the new number made its own contact meanwhile.
        run.result.duplicates += 1
        return
    old.replaced_at = event.timestamp
    session.add(old)
    if event.new_phone and contact.phone in (None, to_e164(event.old_id)):
        contact.phone = event.new_phone
    contact.updated_at = utcnow()
    session.add(contact)
    await session.flush()
    run.result.updated += 1
    run.tell(EventType.CONTACT_UPDATED, contact_data(contact))
