from __future__ import annotations

from typing import Literal

from pydantic import Field

from .common import Output


class TicketResponse(Output):
    ticket: str = Field(
        description="Pass as GET /ws?ticket=...; valid once, for expires_in seconds."
    )
    expires_in: int


class MetricsSnapshot(Output):
    open_conversations: int
    pending_conversations: int
    unread_messages: int
    messages_today_inbound: int
    messages_today_outbound: int
    leads_today: int
    agents_online: int
    avg_first_response_seconds_today: float | None
    # Open or pending, with no one assigned.
    unassigned_conversations: int
    median_first_response_seconds_today: float | None


class AgentStatus(Output):
    user_id: int
    status: Literal["online", "away", "offline"]


class Typing(Output):
    conversation_id: int
    user_id: int | None
    connection_id: str


class MessageStatusChange(Output):
    id: int
    conversation_id: int
    external_id: str | None
    status: Literal["queued", "sent", "delivered", "read", "failed"]
    error_code: str | None
    error: str | None
    updated_at: str


class Deleted(Output):
    id: int
