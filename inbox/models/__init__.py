"""Tables. Importing this package registers every table on ``SQLModel.metadata``."""

from .conversations import Channel, Conversation, Message, PendingStatus
from .crm import Contact, ContactIdentity, Lead
from .events import Event
from .organizations import ApiKey, Organization, User
from .types import utcnow

__all__ = [
    "ApiKey",
    "Channel",
    "Contact",
    "ContactIdentity",
    "Conversation",
    "Event",
    "Lead",
    "Message",
    "Organization",
    "PendingStatus",
    "User",
    "utcnow",
]
