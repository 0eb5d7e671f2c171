"""Rows that follow from stored messages, written with them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from ..media.inbound import record_inbound_media
from . import rollups


async def record_side_writes(connection: AsyncConnection, stored: Sequence[dict[str, Any]]) -> None:
    """The place for work that follows from stored messages (rollups, an archive).

    Called once per flush, in the messages' own transaction, with the rows it stored
    (``id`` included) in the order told. The ingest hot path: one statement per table.
    """
    await rollups.count_messages(connection, stored)
    await record_inbound_media(connection, stored)
