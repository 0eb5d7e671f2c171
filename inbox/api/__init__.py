"""REST endpoints, one module per resource."""

from ..web.endpoint import Operation
from . import (
    api_keys,
    auth,
    channels,
    contacts,
    conversations,
    leads,
    messages,
    organization,
    realtime,
    users,
)

OPERATIONS: list[Operation] = [
    op
    for module in (
        auth,
        organization,
        users,
        api_keys,
        channels,
        contacts,
        leads,
        conversations,
        messages,
        realtime,
    )
    for op in module.api.operations
]
