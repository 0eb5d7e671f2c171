"""Delivery status of outbound messages: it only moves forward."""

from __future__ import annotations

from typing import Any

from sqlalchemy import update
from sqlmodel import col

from ..models import Message
from .outbox import Transaction

# Delivery status only moves forward; ``failed`` is terminal.
_STATUS_RANK = {"queued": 0, "sent": 1, "delivered": 2, "read": 3}


def statuses_before(status: str) -> list[str]:
    """The statuses a message may be in for ``status`` to be news."""
    if status == "failed":
        return ["queued", "sent"]
    rank = _STATUS_RANK[status]
    return [s for s, r in _STATUS_RANK.items() if r < rank]


async def move_status(tx: Transaction, message_id: int, changes: dict[str, Any]) -> bool:
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
    tx.emit("message.status", status_data(message))
    return True


def status_data(message: Message) -> dict[str, Any]:
    return {
        "id": message.id,
        "conversation_id": message.conversation_id,
        "external_id": message.external_id,
        "status": message.status,
        "error_code": message.error_code,
        "error": message.error,
        "updated_at": message.updated_at.isoformat().replace("+00:00", "Z"),
    }
