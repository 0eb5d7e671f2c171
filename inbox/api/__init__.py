"""REST endpoints, one module per resource."""

from ..web.endpoint import Operation
from . import (
    api_keys,
    auth,
    canned,
    channels,
    contacts,
    conversations,
    leads,
    messages,
    organization,
    realtime,
    sessions,
    team,
    users,
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
        contacts,
        leads,
        conversations,
        messages,
        canned,
        realtime,
    )
    for op in module.api.operations
]
