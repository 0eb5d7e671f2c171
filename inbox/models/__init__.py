"""Tables. Importing this package registers every table on ``SQLModel.metadata``."""

from typing import cast

from sqlalchemy import Table, inspect
from sqlmodel import SQLModel

from .canned import CannedResponse
from .conversations import Channel, Conversation, Message, PendingStatus
from .crm import Contact, ContactIdentity, Lead
from .events import Event
from .organizations import ApiKey, ConsoleSession, Organization, User
from .types import utcnow

__all__ = [
    "ApiKey",
    "CannedResponse",
    "Channel",
    "ConsoleSession",
    "Contact",
    "ContactIdentity",
    "Conversation",
    "Event",
    "Lead",
    "Message",
    "Organization",
    "PendingStatus",
    "User",
    "table_of",
    "utcnow",
]


def table_of(model: type[SQLModel]) -> Table:
    """The table ``model`` maps to, for statements written in Core.

    SQLModel declares no ``__table__`` to type checkers; its mapper has it."""
    # A table model maps exactly one Table.
    return cast(Table, inspect(model).local_table)
