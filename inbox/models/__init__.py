"""Tables. Importing this package registers every table on ``SQLModel.metadata``."""

from .conversations import Channel, Conversation, Message
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
    "User",
    "utcnow",
]
