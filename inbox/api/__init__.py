"""REST endpoints, one module per resource."""

from ..web.endpoint import Operation
from . import (
    analytics,
    api_keys,
    auth,
    canned,
    channels,
    contacts,
    conversation_start,
    conversations,
    leads,
    media,
    messages,
    organization,
    realtime,
    sessions,
    team,
    templates,
    users,
    webhook_deliveries,
    webhook_log,
    webhooks,
)

OPERATIONS: list[Operation] = [
    op
    for module in (
        auth,
        sessions,
        organization,
        users,
        team,
        api_keys,
        channels,
        templates,
        contacts,
        leads,
        conversations,
        conversation_start,
        messages,
        media,
        canned,
        realtime,
        analytics,
        webhooks,
        webhook_deliveries,
        webhook_log,
    )
    for op in module.api.operations
]
