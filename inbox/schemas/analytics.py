"""The analytics API: its query parameters and answers."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .common import Output
from .fields import Id

Format = Literal["json", "csv"]
MetricName = Literal[
    "messages_received",
    "messages_sent",
    "conversations_opened",
    "conversations_closed",
    "leads_created",
    "contacts_created",
    "first_response_seconds",
]
IntervalName = Literal["hour", "day", "week"]


class RangeQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: str | None = Field(
        default=None,
        alias="from",
        max_length=64,
        description="ISO-8601 date or date-time where the range begins; without an offset "
        "it is local time in the zone. Default: today's start in the organization's zone.",
    )
    to: str | None = Field(
        default=None,
        max_length=64,
        description="ISO-8601 date or date-time where the range ends, exclusive. Default: "
        "the day after from's.",
    )
    timezone: str | None = Field(
        default=None,
        max_length=64,
        description="An IANA zone name for this call instead of the organization's.",
    )
    format: Format = Field(
        default="json", description="csv: a CSV table with a header row (or Accept: text/csv)."
    )


class TrendQuery(RangeQuery):
    metric: MetricName
    interval: IntervalName = Field(
        default="day",
        description="Buckets begin on the local hour, at local midnight, or at local "
        "midnight on Mondays; at most 1,000 per call.",
    )
    channel_id: Id | None = Field(default=None, description="Only this channel's figures.")


class RangeOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    from_: str = Field(alias="from")
    to: str
    timezone: str


class ConversationFigures(Output):
    opened: int
    closed: int
    open_now: int
    pending_now: int
    unassigned_now: int


class MessageFigures(Output):
    received: int
    sent: int = Field(
        description="Replies and messages sent from the platform's own app; "
        "private notes are not sent."
    )


class ContactFigures(Output):
    created: int


class LeadFigures(Output):
    created: int
    converted: int
    conversion_rate: float | None = Field(
        description="converted / created within the range; null when none was created"
    )


class Durations(Output):
    median: float | None = Field(description="Seconds; null when count is 0")
    p90: float | None = Field(description="Seconds, nearest rank; null when count is 0")
    count: int


class ChannelFigures(Output):
    channel_id: int
    kind: str
    name: str
    received: int
    sent: int
    conversations_opened: int


class Overview(Output):
    range: RangeOut
    conversations: ConversationFigures
    messages: MessageFigures
    contacts: ContactFigures
    leads: LeadFigures
    first_response_seconds: Durations = Field(
        description="From a conversation's first inbound message to the first reply sent "
        "after it, for first responses in the range"
    )
    resolution_seconds: Durations = Field(
        description="From a conversation's opening to its closing, for closings in the range"
    )
    by_channel: list[ChannelFigures]


class OverviewResponse(Output):
    data: Overview


class TrendPoint(Output):
    start: str = Field(description="The bucket's local start, ISO-8601 with its offset")
    value: float | None = Field(description="A count, or a median (null with no sample)")


class Trend(Output):
    metric: MetricName
    interval: IntervalName
    timezone: str
    points: list[TrendPoint]


class TrendResponse(Output):
    data: Trend


class AgentFigures(Output):
    user_id: int
    name: str
    conversations_assigned: int = Field(
        description="Conversations opened in the range that are assigned to the agent"
    )
    conversations_closed: int = Field(
        description="Conversations closed in the range that are assigned to the agent"
    )
    messages_sent: int
    first_response_seconds_median: float | None
    online: bool


class AgentsResponse(Output):
    data: list[AgentFigures]
