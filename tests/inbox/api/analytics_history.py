"""A history with hand-computed figures, around the end of summer time in Berlin.

On Sunday 2026-10-25 clocks in Europe/Berlin go back from 03:00 CEST to 02:00 CET
(01:00 UTC): that local day lasts 25 hours, 2026-10-24T22:00Z to 2026-10-25T23:00Z.
Saturday 2026-10-24 is 2026-10-23T22:00Z to 2026-10-24T22:00Z, Monday 2026-10-26
is 2026-10-25T23:00Z to 2026-10-26T23:00Z. Instants below are UTC.

    conv          channel  contact  assignee  inbound           replies (sender)   notes  closed
    c1            wa       k1       alice     24 08:00, 08:05   24 08:20 (alice)   1 bob  24 10:00
    c2            sms      k2       bob       25 00:30          25 01:30 (bob)            25 22:30
    c3            wa       k3       alice     25 01:10, 01:40   25 01:20 (alice)   1 alice
    c4            sms      k1       -         25 23:00, 23:07
    c5 (pending)  wa       k2       bob       26 09:00          26 09:45 (bob)

Each conversation opens at its first inbound message; a reply that follows is its
first response (c1 1200 s, c2 3600 s, c3 600 s, c5 2700 s). Contacts: k1 24 07:59,
k2 25 00:29, k3 25 01:09. Leads: l1 created 24 12:00 and converted 25 12:00, l2
created 25 02:00, l3 created 26 10:00 and converted 26 11:00.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from inbox.models import Channel, Contact, Conversation, Lead, Message
from inbox.services import rollups

ZONE = "Europe/Berlin"


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 10, day, hour, minute, tzinfo=UTC)


@dataclass
class History:
    wa: int
    sms: int
    alice: Any
    bob: Any
    conversations: dict[str, int]


async def _build(
    db: Any, org_id: int, alice_id: int, bob_id: int
) -> tuple[int, int, dict[str, int]]:
    async with db.session() as session:
        wa = Channel(organization_id=org_id, kind="whatsapp", name="WhatsApp line")
        sms = Channel(organization_id=org_id, kind="sms", name="SMS line")
        contacts = {
            name: Contact(organization_id=org_id, name=name, created_at=when, updated_at=when)
            for name, when in (("k1", at(24, 7, 59)), ("k2", at(25, 0, 29)), ("k3", at(25, 1, 9)))
        }
        session.add_all([wa, sms, *contacts.values()])
        await session.flush()
        plan: list[
            tuple[
                str,
                Channel,
                str,
                int | None,
                str,
                list[datetime],
                list[tuple[datetime, int]],
                list[tuple[datetime, int]],
                datetime | None,
            ]
        ] = [
            (
                "c1",
                wa,
                "k1",
                alice_id,
                "closed",
                [at(24, 8), at(24, 8, 5)],
                [(at(24, 8, 20), alice_id)],
                [(at(24, 8, 10), bob_id)],
                at(24, 10),
            ),
            (
                "c2",
                sms,
                "k2",
                bob_id,
                "closed",
                [at(25, 0, 30)],
                [(at(25, 1, 30), bob_id)],
                [],
                at(25, 22, 30),
            ),
            (
                "c3",
                wa,
                "k3",
                alice_id,
                "open",
                [at(25, 1, 10), at(25, 1, 40)],
                [(at(25, 1, 20), alice_id)],
                [(at(25, 1, 15), alice_id)],
                None,
            ),
            ("c4", sms, "k1", None, "open", [at(25, 23), at(25, 23, 7)], [], [], None),
            ("c5", wa, "k2", bob_id, "pending", [at(26, 9)], [(at(26, 9, 45), bob_id)], [], None),
        ]
        ids: dict[str, int] = {}
        for name, channel, contact, assignee, status, inbound, replies, notes, closed in plan:
            opened = inbound[0]
            first = replies[0] if replies else None
            conv = Conversation(
                organization_id=org_id,
                contact_id=contacts[contact].id,
                channel_id=channel.id,
                status=status,
                assignee_id=assignee,
                created_at=opened,
                updated_at=closed or opened,
                closed_at=closed,
                resolution_seconds=(closed - opened).total_seconds() if closed else None,
                first_response_at=first[0] if first else None,
                first_response_seconds=(first[0] - opened).total_seconds() if first else None,
                first_responder_id=first[1] if first else None,
            )
            session.add(conv)
            await session.flush()
            assert conv.id is not None
            ids[name] = conv.id
            rows = [("inbound", when, None, False) for when in inbound]
            rows += [("outbound", when, user, False) for when, user in replies]
            rows += [("outbound", when, user, True) for when, user in notes]
            for direction, when, user, private in rows:
                session.add(
                    Message(
                        organization_id=org_id,
                        conversation_id=conv.id,
                        channel_id=channel.id,
                        direction=direction,
                        sender_contact_id=contacts[contact].id if user is None else None,
                        sender_user_id=user,
                        private=private,
                        content="hello",
                        status="received" if direction == "inbound" else "sent",
                        ordered_at=when,
                        created_at=when,
                        updated_at=when,
                    )
                )
        for created, converted in (
            (at(24, 12), at(25, 12)),
            (at(25, 2), None),
            (at(26, 10), at(26, 11)),
        ):
            session.add(
                Lead(
                    organization_id=org_id,
                    name="lead",
                    status="converted" if converted else "new",
                    created_at=created,
                    updated_at=converted or created,
                    converted_at=converted,
                )
            )
        await session.commit()
        assert wa.id is not None and sms.id is not None
        wa_id, sms_id = wa.id, sms.id
    # History written straight into the tables has no increments: the rebuild counts it.
    await rollups.rebuild_all(db, org_id)
    return wa_id, sms_id, ids


def build_history(tenant: Any) -> History:
    alice, _ = tenant.user("agent")
    bob, _ = tenant.user("agent")
    r = tenant.api.patch("/api/organization", json={"timezone": ZONE})
    assert r.status_code == 200, r.text
    wa, sms, ids = tenant.service.run(_build(tenant.service.db, tenant.org_id, alice.id, bob.id))
    return History(wa, sms, alice, bob, ids)
