"""Platform connectors: verify and parse webhooks into normalized events, send replies.

A library of its own: no database, no broker, no web framework.
"""

from .errors import ConnectorError, PayloadError, SendError, SignatureError
from .registry import Adapter, adapter_for
from .types import (
    Deletion,
    Echo,
    InboundEvent,
    InboundMessage,
    LeadSubmission,
    OutboundMessage,
    Reaction,
    ReadReceipt,
    SendResult,
    StatusUpdate,
    WebhookRequest,
)

__all__ = [
    "Adapter",
    "ConnectorError",
    "Deletion",
    "Echo",
    "InboundEvent",
    "InboundMessage",
    "LeadSubmission",
    "OutboundMessage",
    "PayloadError",
    "Reaction",
    "ReadReceipt",
    "SendError",
    "SendResult",
    "SignatureError",
    "StatusUpdate",
    "WebhookRequest",
    "adapter_for",
]
