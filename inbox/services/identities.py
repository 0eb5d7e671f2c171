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
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from connectors.phones import to_e164
from connectors.types import IdentityChange

from ..events import EventType
from ..models import Contact, ContactIdentity, utcnow
from ..views import contact_data

if TYPE_CHECKING:
    from .inbound import Delivery

log = logging.getLogger("inbox.ingest")


def has_news(
    identity_name: str | None, identity_user_id: str | None, name: str | None, user_id: str | None
) -> bool:
    """Whether a message tells something its sender's identity does not record yet."""
    return bool(name and name != identity_name) or bool(user_id and user_id != identity_user_id)


async def note_identity(
    delivery: Delivery,
    contact: Contact,
    identity: ContactIdentity,
    name: str | None,
    user_id: str | None,
    at: datetime,
) -> None:
    """Record a new profile name or user id on ``identity``; rename the contact when its
    name is still the one the platform gave."""
    if not has_news(identity.profile_name, identity.user_id, name, user_id):
        return
    renamed = False
    if name and name != identity.profile_name:
        previous = identity.profile_name
        if previous:
            until = at.isoformat().replace("+00:00", "Z")
            identity.former_names = [*identity.former_names, {"name": previous, "until": until}]
        # An identity recorded before names were kept has none: the contact's name may
        # be an agent's, so only an empty one is filled then.
        if not contact.name or (previous is not None and contact.name == previous):
            contact.name = name
            renamed = True
        identity.profile_name = name
    if user_id and user_id != identity.user_id:
        identity.user_id = user_id
    delivery.session.add(identity)
    if renamed:
        contact.updated_at = utcnow()
        delivery.session.add(contact)
    await delivery.session.flush()
    if renamed:
        delivery.tx.emit(EventType.CONTACT_UPDATED, contact_data(contact))


async def by_user_id(delivery: Delivery, kind: str, user_ids: list[str]) -> ContactIdentity | None:
    """The identity that records one of ``user_ids`` as its person's second id."""
    if not user_ids:
        return None
    return (
        await delivery.session.exec(
            select(ContactIdentity)
            .where(
                col(ContactIdentity.organization_id) == delivery.org_id,
                col(ContactIdentity.kind) == kind,
                col(ContactIdentity.user_id).in_(user_ids),
            )
            .order_by(col(ContactIdentity.id))
            .limit(1)
        )
    ).first()


async def move_identity(delivery: Delivery, event: IdentityChange) -> None:
    if event.id_kind == "user_id":
        await _move_user_id(delivery, event)
    else:
        await _move_number(delivery, event)


async def _move_user_id(delivery: Delivery, event: IdentityChange) -> None:
    identity = await by_user_id(delivery, event.platform, [event.old_id, event.new_id])
    if identity is None:
        # Nobody here was known by that user id: there is nothing to move.
        delivery.result.ignored += 1
        return
    if identity.user_id == event.new_id:
        delivery.result.duplicates += 1
        return
    identity.user_id = event.new_id
    delivery.session.add(identity)
    await delivery.session.flush()
    delivery.result.updated += 1
    contact = await delivery.session.get(Contact, identity.contact_id)
    if contact is not None:
        delivery.tx.emit(EventType.CONTACT_UPDATED, contact_data(contact))


async def _identity(delivery: Delivery, kind: str, external_id: str) -> ContactIdentity | None:
    return (
        await delivery.session.exec(
            select(ContactIdentity).where(
                col(ContactIdentity.organization_id) == delivery.org_id,
                col(ContactIdentity.kind) == kind,
                col(ContactIdentity.external_id) == external_id,
            )
        )
    ).first()


async def _move_number(delivery: Delivery, event: IdentityChange) -> None:
    old = await _identity(delivery, event.platform, event.old_id)
    if old is None:
        delivery.result.ignored += 1
        return
    contact = await delivery.session.get(Contact, old.contact_id, with_for_update=True)
    assert contact is not None
    new = await _identity(delivery, event.platform, event.new_id)
    if new is not None:
        if new.contact_id != old.contact_id:
            # The new number wrote to us before the notice came and is a contact of its
            # own: two people's records are not merged behind an agent's back.
            log.info(
                "contact %s changed number to one contact %s has already",
                old.contact_id,
                new.contact_id,
            )
        delivery.result.duplicates += 1
        return
    try:
        async with delivery.session.begin_nested():
            delivery.session.add(
                ContactIdentity(
                    organization_id=delivery.org_id,
                    contact_id=old.contact_id,
                    kind=event.platform,
                    external_id=event.new_id,
                    profile_name=old.profile_name,
                )
            )
            await delivery.session.flush()
    except IntegrityError:
        # A first message from the new number made its own contact meanwhile.
        delivery.result.duplicates += 1
        return
    old.replaced_at = event.timestamp
    delivery.session.add(old)
    if event.new_phone and contact.phone in (None, to_e164(event.old_id)):
        contact.phone = event.new_phone
    contact.updated_at = utcnow()
    delivery.session.add(contact)
    await delivery.session.flush()
    delivery.result.updated += 1
    delivery.tx.emit(EventType.CONTACT_UPDATED, contact_data(contact))
