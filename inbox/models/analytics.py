"""Per-organization rollups the analytics read instead of scanning messages."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, ForeignKey, Integer, PrimaryKeyConstraint
from sqlmodel import Field, SQLModel

# A rollup slot's length. Every zone's offset is a whole number of quarter hours, so
# a slot never straddles a local hour, day or week boundary.
SLOT_SECONDS = 900


def _org() -> Column[int]:
    return Column(
        Integer,
        ForeignKey("organizations.id", ondelete="CASCADE"),
        nullable=False,
        autoincrement=False,
    )


def _key() -> Column[int]:
    return Column(Integer, nullable=False, autoincrement=False)


def _count() -> Column[int]:
    return Column(Integer, nullable=False, server_default="0")


class MessageRollup(SQLModel, table=True):
    """Messages stored per quarter hour and channel, written in the messages' own
    transaction."""

    __tablename__ = "message_rollups"
    __table_args__ = (PrimaryKeyConstraint("organization_id", "slot", "channel_id"),)

    organization_id: int = Field(sa_column=_org())
    # Seconds since the epoch, divided by SLOT_SECONDS.
    slot: int = Field(sa_column=Column(BigInteger, nullable=False, autoincrement=False))
    channel_id: int = Field(sa_column=_key())
    received: int = Field(default=0, sa_column=_count())
    # Replies and platform echoes; private notes are not sent to anyone.
    sent: int = Field(default=0, sa_column=_count())


class AgentRollup(SQLModel, table=True):
    """Replies sent per quarter hour and user (private notes are not sent): a table of
    its own, so that the figures per channel read no row per agent."""

    __tablename__ = "agent_rollups"
    __table_args__ = (PrimaryKeyConstraint("organization_id", "slot", "user_id"),)

    organization_id: int = Field(sa_column=_org())
    slot: int = Field(sa_column=Column(BigInteger, nullable=False, autoincrement=False))
    user_id: int = Field(sa_column=_key())
    sent: int = Field(default=0, sa_column=_count())
