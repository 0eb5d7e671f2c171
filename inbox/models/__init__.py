"""Tables. Importing this package registers every table on ``SQLModel.metadata``."""

from typing import cast

from sqlalchemy import Table, inspect
from sqlmodel import SQLModel

from .analytics import AgentRollup, MessageRollup
from .canned import CannedResponse
from .conversations import Channel, Conversation, Message, PendingStatus
from .crm import Contact, ContactIdentity, Lead
from .events import Event
from .media import Media
from .organizations import ApiKey, ConsoleSession, Organization, User
from .refresh import RefreshFamily, RefreshToken
from .templates import MessageTemplate
from .types import utcnow
from .webhook_log import WebhookRecord
from .webhooks import WebhookAttempt, WebhookDelivery, WebhookEndpoint

__all__ = [
    "AgentRollup",
    "ApiKey",
    "CannedResponse",
    "Channel",
    "ConsoleSession",
    "Contact",
    "ContactIdentity",
    "Conversation",
    "Event",
    "Lead",
    "Media",
    "Message",
    "MessageRollup",
    "MessageTemplate",
    "Organization",
    "PendingStatus",
    "RefreshFamily",
    "RefreshToken",
    "User",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WebhookRecord",
    "table_of",
    "utcnow",
]


def table_of(model: type[SQLModel]) -> Table:
    """The table ``model`` maps to, for statements written in Core.

    SQLModel declares no ``__table__`` to type checkers; its mapper has it."""
    # A table model maps exactly one Table.
    return cast(Table, inspect(model).local_table)
