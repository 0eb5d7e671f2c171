"""The interface every broker backend implements."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from ..control import Control
from ..envelope import Envelope


class BrokerUnavailable(Exception):
    """The broker cannot take a message now. The event is still in the outbox."""


class BrokerBackend(Protocol):
    async def connect(self) -> None:
        """Create loop-bound resources; call from the event loop that will use them."""
        ...

    async def disconnect(self) -> None: ...

    async def subscribe(self) -> None:
        """Start this process's one subscription, covering every organization."""
        ...

    async def publish(self, envelopes: Sequence[Envelope]) -> None:
        """Send to every subscribed process, each organization's in order (the only order
        anyone relies on: ids are per organization), in one round trip where the broker
        allows it; raise BrokerUnavailable quickly on failure."""
        ...

    async def publish_control(self, control: Control) -> None:
        """Send an instruction to every subscribed process, on a channel of its own;
        raise BrokerUnavailable quickly on failure."""
        ...

    async def next_message(self) -> Envelope | Control | None:
        """The next event or instruction, or None right after the subscription came back
        from a loss: events published in between were missed and must be caught up."""
        ...

    async def ping(self) -> bool:
        """Whether the broker is reachable and the subscription (if any) is live."""
        ...


def channel(prefix: str, organization_id: int) -> str:
    return f"{prefix}:org:{organization_id}"


def all_channels(prefix: str) -> str:
    return f"{prefix}:org:*"


def control_channel(prefix: str) -> str:
    # Outside the events' pattern: no subscriber to events can take it for one.
    return f"{prefix}:control"
