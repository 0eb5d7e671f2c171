"""Delivery status of outbound messages: it only moves forward."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import delete, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from ..events import EventType
from ..models import Message, PendingStatus, utcnow
from .outbox import UnitOfWork
from .timestamps import utc_text

# How long a status naming no message of ours is kept for its message to be recorded:
# the platform's answer to a send comes within seconds, or the send failed.
PENDING_FOR = timedelta(hours=1)

# Delivery status only moves forward; ``failed`` is terminal.
_STATUS_RANK = {"queued": 0, "sent": 1, "delivered": 2, "read": 3}


def statuses_before(status: str) -> list[str]:
    """The statuses a message may be in for ``status`` to be news."""
    if status == "failed":
        return ["queued", "sent"]
    rank = _STATUS_RANK[status]
    return [s for s, r in _STATUS_RANK.items() if r < rank]


async def move_status(tx: UnitOfWork, message_id: int, changes: dict[str, Any]) -> bool:
    """Move a message's delivery status forward, never back; emit ``message.status``.

    The compare-and-set makes two status webhooks racing each other safe.
    """
    moved = await tx.session.exec(
        update(Message)
        .where(
            col(Message.id) == message_id,
            col(Message.status).in_(statuses_before(changes["status"])),
        )
        .values(**changes)
    )
    if moved.rowcount == 0:
        return False
    message = await tx.session.get(Message, message_id, populate_existing=True)
    assert message is not None
    tx.emit(EventType.MESSAGE_STATUS, status_data(message))
    return True


def status_data(message: Message) -> dict[str, Any]:
    return {
        "id": message.id,
        "conversation_id": message.conversation_id,
        "external_id": message.external_id,
        "status": message.status,
        "error_code": message.error_code,
        "error": message.error,
        "updated_at": utc_text(message.updated_at),
    }


async def keep_pending(
    tx: UnitOfWork,
    channel_id: int,
    external_id: str,
    status: str,
    error_code: str | None,
    error: str | None,
) -> bool:
    """Keep a status whose message is not known (yet); answer whether it is new here.

    Old ones are pruned on the way: they were about messages sent from elsewhere."""
    session = tx.session
    await session.exec(
        delete(PendingStatus).where(col(PendingStatus.received_at) < utcnow() - PENDING_FOR)
    )
    kept = await session.exec(
        select(PendingStatus.id).where(
            col(PendingStatus.channel_id) == channel_id,
            col(PendingStatus.external_id) == external_id,
            col(PendingStatus.status) == status,
        )
    )
    if kept.first() is not None:
        return False
    session.add(
        PendingStatus(
            channel_id=channel_id,
            external_id=external_id,
            status=status,
            error_code=error_code,
            error=error,
        )
    )
    await session.flush()
    return True


# The order in which statuses kept for one message are applied: its way forward.
_APPLY_ORDER = {"sent": 0, "failed": 1, "delivered": 2, "read": 3}


# Statuses kept because their message was not known when they came, whose message
# is known now: under concurrency a status can be kept in the very moment its send is
# recorded, each transaction not seeing the other's row. A sweep finds them.
_LATE: Any = (
    select(
        PendingStatus.channel_id,
        PendingStatus.external_id,
        col(Message.id).label("message_id"),
        Message.organization_id,
    )
    .join(
        Message,
        (col(Message.channel_id) == col(PendingStatus.channel_id))
        & (col(Message.external_id) == col(PendingStatus.external_id)),
    )
    .distinct()
    .limit(100)
)


async def late_statuses(session: AsyncSession) -> list[tuple[int, str, int, int]]:
    """(channel id, platform id, message id, organization id) of kept statuses whose
    message is known now."""
    return [(row[0], row[1], row[2], row[3]) for row in await session.exec(_LATE)]


async def apply_pending(tx: UnitOfWork, message_id: int, channel_id: int, external_id: str) -> None:
    """Apply the statuses kept for ``external_id`` to the message that now holds it."""
    session = tx.session
    kept = list(
        await session.exec(
            select(PendingStatus).where(
                col(PendingStatus.channel_id) == channel_id,
                col(PendingStatus.external_id) == external_id,
            )
        )
    )
    if not kept:
        return
    kept.sort(key=lambda p: (_APPLY_ORDER.get(p.status, 9), p.received_at))
    for pending in kept:
        changes: dict[str, Any] = {"status": pending.status, "updated_at": utcnow()}
        if pending.status == "failed":
            changes["error_code"] = pending.error_code
            changes["error"] = pending.error
        await move_status(tx, message_id, changes)
    await session.exec(delete(PendingStatus).where(col(PendingStatus.id).in_([p.id for p in kept])))
