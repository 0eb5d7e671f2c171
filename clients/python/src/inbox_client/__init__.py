"""Python client for Unified Inbox: typed REST calls and an event stream that resumes."""

from .client import UNSET, InboxClient
from .errors import InboxError, ReplayTruncated
from .stream import Backoff
from .types import (
    Contact,
    ContactDetail,
    Conversation,
    Event,
    Lead,
    Message,
    Webhook,
    WebhookDelivery,
    WebhookWithSecret,
)

__all__ = [
    "UNSET",
    "Backoff",
    "Contact",
    "ContactDetail",
    "Conversation",
    "Event",
    "InboxClient",
    "InboxError",
    "Lead",
    "Message",
    "ReplayTruncated",
    "Webhook",
    "WebhookDelivery",
    "WebhookWithSecret",
]
