"""Arrivals of plain messages stored together: with fewer statements, yet the same
results, rows and events, in the same order, as each arrival stored alone (a batch
of one)."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import update
from sqlmodel import col, select

from connectors.types import InboundEvent, InboundMessage, Reaction
from inbox.db import Database
from inbox.models import Channel, Contact, Conversation, Message
from inbox.services import accounts
from inbox.services.group_commit import GroupCommit
from inbox.services.ingest import Arrival, IngestResult, ingest
from inbox.services.outbox import OutboxEvent
from tests.inbox.platforms import unique_digits

_seq = itertools.count(1)
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


class Recorder:
    def __init__(self) -> None:
        self.events: list[OutboxEvent] = []

    async def publish(self, events: Sequence[OutboxEvent]) -> None:
        self.events.extend(events)


@pytest.fixture()
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    yield database
    await database.dispose()


def message(
    channel: Channel,
    sender: str,
    external_id: str,
    *,
    minute: int,
    name: str | None = None,
    phone: str | None = None,
) -> InboundMessage:
    return InboundMessage(
        platform=channel.kind,
        channel_key=channel.routing_key,
        sender_id=sender,
        external_id=external_id,
        timestamp=T0 + timedelta(minutes=minute),
        content=f"text of {external_id}",
        sender_name=name,
        sender_phone=phone,
        raw={"id": external_id},
    )


class Inbox:
    """An organization with a WhatsApp and an SMS channel, and senders already known:
    one with an open conversation, one unnamed with a pending conversation, one whose
    only conversation is closed."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.sink = Recorder()

    async def setup(self) -> Inbox:
        n = next(_seq)
        org = await accounts.create_organization(self.db, f"Batch {n}")
        assert org.id is not None
        self.org_id = org.id
        # Real settings: other tests read every channel of a kind.
        wa_key, sms_key = f"106{unique_digits(9)}", f"+1415{unique_digits(7)}"
        self.wa = Channel(
            organization_id=org.id,
            kind="whatsapp",
            name="wa",
            routing_key=wa_key,
            settings={
                "phone_number_id": wa_key,
                "access_token": "t",
                "app_secret": "s",
                "verify_token": f"v{n}",
            },
        )
        self.sms = Channel(
            organization_id=org.id,
            kind="sms",
            name="sms",
            routing_key=sms_key,
            settings={"phone_number": sms_key, "account_sid": "AC" + "0" * 32, "auth_token": "t"},
        )
        async with self.db.session() as session:
            session.add_all([self.wa, self.sms])
            await session.commit()
        await self.alone([message(self.wa, "111", "pre-1", minute=1, name="Kay")])
        await self.alone([message(self.wa, "222", "pre-2", minute=2)])
        await self.alone([message(self.wa, "333", "pre-3", minute=3, name="Tre")])
        await self.set_status("222", "pending")
        await self.set_status("333", "closed")
        self.sink.events.clear()
        return self

    async def set_status(self, sender: str, status: str) -> None:
        async with self.db.session() as session:
            conv = (
                await session.exec(
                    select(Conversation).where(
                        col(Conversation.organization_id) == self.org_id,
                        col(Conversation.last_message_preview) == f"text of pre-{sender[0]}",
                    )
                )
            ).one()
            await session.exec(
                update(Conversation).where(col(Conversation.id) == conv.id).values(status=status)
            )
            await session.commit()

    async def alone(self, events: Sequence[InboundEvent]) -> IngestResult:
        """As a unit of its own: a batch of one."""
        channel = self.wa if events[0].platform == "whatsapp" else self.sms
        async with GroupCommit(self.db, self.sink) as commits:
            return await commits.run(self.org_id, Arrival(channel, events))

    def deliveries(self) -> list[tuple[Channel, list[InboundEvent]]]:
        wa, sms = self.wa, self.sms
        return [
            (wa, [message(wa, "111", "m1", minute=10)]),  # known sender, open conversation
            # stored before, and would name the sender: changes nothing
            (wa, [message(wa, "222", "pre-2", minute=2, name="Zed")]),
            # stored before, its conversation closed since: opens none
            (wa, [message(wa, "333", "pre-3", minute=3)]),
            (wa, [message(wa, "222", "m2", minute=11, name="Zed")]),  # name learned, pending
            (wa, [message(wa, "333", "m3", minute=12)]),  # conversation closed: a new one
            (
                wa,
                [  # two new senders in one delivery
                    message(wa, "444", "m4", minute=13, name="Quad", phone="+14155550144"),
                    message(wa, "555", "m5", minute=14),
                ],
            ),
            (wa, [message(wa, "111", "pre-1", minute=1)]),  # stored before
            (wa, [message(wa, "111", "m1", minute=10)]),  # stored earlier in this batch
            (wa, [message(wa, "444", "m6", minute=15)]),  # sender new earlier in this batch
            (wa, [message(wa, "111", "m7", minute=9)]),  # older than the last: no new preview
            (sms, [message(sms, "+14155550144", "SM8", minute=16, phone="+14155550144")]),
        ]

    async def state(self) -> dict[str, Any]:
        """Contacts, conversations and messages, named by what a user sees."""
        async with self.db.session() as session:
            contacts = {
                c.id: c
                for c in await session.exec(
                    select(Contact).where(col(Contact.organization_id) == self.org_id)
                )
            }
            conversations = list(
                await session.exec(
                    select(Conversation)
                    .where(col(Conversation.organization_id) == self.org_id)
                    .order_by(col(Conversation.id))
                )
            )
            messages = list(
                await session.exec(
                    select(Message)
                    .where(col(Message.organization_id) == self.org_id)
                    .order_by(col(Message.id))
                )
            )
        by_conv = {conv.id: conv for conv in conversations}
        return {
            "contacts": sorted((c.name or "", c.phone or "", c.status) for c in contacts.values()),
            "conversations": [
                (
                    contacts[conv.contact_id].name,
                    conv.channel_id == self.wa.id,
                    conv.status,
                    conv.unread_count,
                    conv.last_message_preview,
                    conv.last_message_at,
                )
                for conv in conversations
            ],
            "messages": [
                (
                    m.external_id,
                    m.content,
                    m.status,
                    m.ordered_at,
                    contacts[m.sender_contact_id].name if m.sender_contact_id else None,
                    conversations.index(by_conv[m.conversation_id]),
                    m.platform_data,
                )
                for m in messages
            ],
        }


# The reply window runs from when a message was stored: a time of storage too.
_DROPPED = {"created_at", "updated_at", "reply_window_expires_at"}
_NAMESPACE = {
    "contact_id": "contact",
    "sender_contact_id": "contact",
    "conversation_id": "conversation",
    "channel_id": "channel",
    "organization_id": "organization",
}


def normalized(events: Sequence[OutboxEvent]) -> list[tuple[str, Any]]:
    """Events with ids replaced by their order of appearance and times of storage
    dropped: what two organizations fed the same deliveries must agree on."""
    names: dict[tuple[str, Any], int] = {}

    def name(space: str, value: Any) -> Any:
        return None if value is None else names.setdefault((space, value), len(names))

    def walk(data: Any, space: str) -> Any:
        if not isinstance(data, dict):
            return data
        out = {}
        for key, value in data.items():
            if key in _DROPPED:
                continue
            if key == "id":
                out[key] = name(space, value)
            elif key in _NAMESPACE:
                out[key] = name(_NAMESPACE[key], value)
            elif isinstance(value, dict) and key in ("contact", "channel"):
                out[key] = walk(value, key)
            else:
                out[key] = value
        return out

    return [(e.type, walk(e.data, e.type.split(".")[0])) for e in events]


async def test_arrivals_stored_together_match_each_stored_alone(db: Database):
    alone, together = await Inbox(db).setup(), await Inbox(db).setup()
    inserts: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO MESSAGES"):
            inserts.append(statement)

    engine = (db.writer_engine or db.engine).sync_engine
    sa_event.listen(engine, "before_cursor_execute", count)
    try:
        alone_results = [await alone.alone(events) for _, events in alone.deliveries()]
        alone_inserts = len(inserts)
        inserts.clear()
        async with GroupCommit(db, together.sink) as commits:
            # Queued before the group commit runs: one batch.
            together_results = await asyncio.gather(
                *(ingest(commits, channel, events) for channel, events in together.deliveries())
            )
    finally:
        sa_event.remove(engine, "before_cursor_execute", count)

    assert together_results == alone_results
    assert [(r.stored, r.duplicates) for r in together_results] == [
        (1, 0),
        (0, 1),
        (0, 1),
        (1, 0),
        (1, 0),
        (2, 0),
        (0, 1),
        (0, 1),
        (1, 0),
        (1, 0),
        (1, 0),
    ]
    assert await together.state() == await alone.state()
    assert normalized(together.sink.events) == normalized(alone.sink.events)
    # Alone, each arrival with a message not known as stored before inserts once; the
    # batch puts every message in with one statement (the new contacts and
    # conversations come first, as they would alone).
    assert alone_inserts == 9
    assert len(inserts) == 1


async def test_what_one_delivery_emits_comes_in_the_order_it_would_alone(db: Database):
    inbox = await Inbox(db).setup()
    deliveries = inbox.deliveries()
    async with GroupCommit(db, inbox.sink) as commits:
        await asyncio.gather(*(ingest(commits, ch, events) for ch, events in deliveries))
    types = [e.type for e in inbox.sink.events]
    # The delivery of two new senders: each one's lead, contact and conversation come
    # before its message, and the conversations' updates close the delivery.
    start = types.index("lead.created")
    assert types[start : start + 10] == [
        "lead.created", "contact.created", "conversation.created", "message.received",
        "lead.created", "contact.created", "conversation.created", "message.received",
        "conversation.updated", "conversation.updated",
    ]  # fmt: skip


async def test_a_stream_of_deliveries_from_shared_senders_is_stored_once_and_in_order(
    db: Database,
):
    """Deliveries arriving over time make many batches, on PostgreSQL some of them in
    flight beside each other: what the senders share must still add up."""
    inbox = await Inbox(db).setup()
    wa, sms = inbox.wa, inbox.sms
    # New senders, each twice: on WhatsApp and, by the same phone, on SMS.
    phones = [f"+1415{unique_digits(7)}" for _ in range(6)]
    senders: list[tuple[Channel, str, str | None]] = [
        *[(wa, f"9{n}", phone) for n, phone in enumerate(phones)],
        *[(sms, phone, phone) for phone in phones],
        (wa, "111", None),  # known, with an open conversation
    ]
    per_sender = 12

    async def deliver(index: int, channel: Channel, sender: str, phone: str | None) -> None:
        await asyncio.sleep(0.002 * (index % 7))
        for n in range(per_sender):
            event = message(channel, sender, f"{sender}-{n}", minute=20 + n, phone=phone)
            result = await ingest(commits, channel, [event])
            assert (result.stored, result.duplicates) == (1, 0)

    async with GroupCommit(db, inbox.sink) as commits:
        await asyncio.gather(*(deliver(i, *sender) for i, sender in enumerate(senders)))

    state = await inbox.state()
    # One contact per phone, made by whichever channel spoke first, plus the three known.
    assert len(state["contacts"]) == len(phones) + 3
    stored = [m for m in state["messages"] if not m[0].startswith("pre-")]
    assert len(stored) == len(senders) * per_sender
    # Every message counted once as unread, whatever batch it was in.
    in_conversation = [0] * len(state["conversations"])
    for m in state["messages"]:
        in_conversation[m[5]] += 1
    assert [c[3] for c in state["conversations"]] == in_conversation
    events = inbox.sink.events
    # Published in commit order: the ids, dense, follow each other.
    assert [e.id for e in events] == list(range(events[0].id, events[0].id + len(events)))
    # And each sender's messages in the order it sent them.
    received = [e.data["external_id"] for e in events if e.type == "message.received"]
    for _, sender, _ in senders:
        mine = [x for x in received if x.rsplit("-", 1)[0] == sender]
        assert mine == [f"{sender}-{n}" for n in range(per_sender)]


async def test_an_arrival_of_several_kinds_tells_in_the_order_its_events_came(
    db: Database, monkeypatch: pytest.MonkeyPatch
):
    """Any other event runs once the messages before it are stored: a reaction finds
    the message it answers, and side writes see each flush's stored rows once."""
    inbox = await Inbox(db).setup()
    flushed: list[list[str]] = []

    async def side_writes(_connection: Any, stored: Sequence[dict[str, Any]]) -> None:
        flushed.append([row["external_id"] for row in stored])

    monkeypatch.setattr("inbox.services.inbound_batch.record_side_writes", side_writes)
    wa = inbox.wa
    first = message(wa, "666", "x1", minute=20, name="Hex")
    reaction = Reaction(
        platform="whatsapp",
        channel_key=wa.routing_key,
        sender_id="666",
        target_id="x1",
        emoji="👍",
        timestamp=T0 + timedelta(minutes=21),
        external_id="r1",
    )
    second = message(wa, "666", "x2", minute=22)
    result = await inbox.alone([first, reaction, second])
    assert (result.stored, result.duplicates) == (3, 0)
    assert [(e.type, e.data.get("external_id")) for e in inbox.sink.events] == [
        ("lead.created", None),
        ("contact.created", None),
        ("conversation.created", None),
        ("message.received", "x1"),
        ("message.received", "r1"),
        ("message.received", "x2"),
        ("conversation.updated", None),
    ]
    assert flushed == [["x1"], ["r1", "x2"]]
    [conversation] = [c for c in (await inbox.state())["conversations"] if c[0] == "Hex"]
    assert conversation[3:5] == (3, "text of x2")


async def test_an_arrival_is_told_with_its_sender_as_it_was_before_a_later_rename(db: Database):
    """A later arrival of the same batch renames the sender: the earlier arrival's
    conversation still shows the name it had, and the rename comes after it."""
    inbox = await Inbox(db).setup()
    wa = inbox.wa
    async with GroupCommit(db, inbox.sink) as commits:
        # Queued before the group commit runs: one batch.
        await asyncio.gather(
            ingest(commits, wa, [message(wa, "111", "k1", minute=10)]),
            ingest(commits, wa, [message(wa, "111", "k2", minute=11, name="Kayla")]),
        )
    told = [
        (e.type, e.data.get("external_id") or e.data.get("contact", e.data).get("name"))
        for e in inbox.sink.events
    ]
    assert told == [
        ("message.received", "k1"),
        ("conversation.updated", "Kay"),
        ("contact.updated", "Kayla"),
        ("message.received", "k2"),
        ("conversation.updated", "Kayla"),
    ]


async def test_a_message_without_a_platform_id_is_stored_in_its_place(db: Database):
    """Message ids follow the order the messages came, whether they carry a platform
    id or not."""
    inbox = await Inbox(db).setup()
    wa = inbox.wa
    unkeyed = dataclasses.replace(
        message(wa, "111", "u2", minute=11), external_id=None, content="text of u2"
    )
    arrivals = [
        [message(wa, "111", "u1", minute=10), unkeyed, message(wa, "111", "u3", minute=12)],
        [message(wa, "222", "u4", minute=13)],
    ]
    async with GroupCommit(db, inbox.sink) as commits:
        # Queued before the group commit runs: one batch.
        await asyncio.gather(*(ingest(commits, wa, events) for events in arrivals))
    async with db.session() as session:
        stored = (
            await session.exec(
                select(Message.content)
                .where(col(Message.channel_id) == wa.id, col(Message.content).like("text of u%"))
                .order_by(col(Message.id))
            )
        ).all()
    assert stored == ["text of u1", "text of u2", "text of u3", "text of u4"]
