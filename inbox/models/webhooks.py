"""Outgoing webhooks: the endpoints an organization registered, and what was sent to them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Column, ForeignKey, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from .types import BigIntId, JSONType, UTCDateTime, utcnow


class WebhookEndpoint(SQLModel, table=True):
    __tablename__ = "webhook_endpoints"

    id: int | None = Field(default=None, primary_key=True)
    organization_id: int = Field(foreign_key="organizations.id", ondelete="CASCADE", index=True)
    url: str = Field(max_length=2048)
    description: str = Field(default="", max_length=500)
    # Event types sent, or ["*"] for all of them.
    events: list[str] = Field(default_factory=list, sa_column=Column(JSONType, nullable=False))
    active: bool = Field(default=True)
    # Sealed (Fernet) signing secrets: the current one, and the one it replaced, still
    # signing beside it until previous_secret_expires_at.
    secret: str = Field(sa_column=Column(Text, nullable=False))
    previous_secret: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    previous_secret_expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # The id of the organization's last event this endpoint has taken deliveries for.
    cursor: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    disabled_reason: str | None = Field(default=None, max_length=500)
    disabled_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_success_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class WebhookDelivery(SQLModel, table=True):
    """One event for one endpoint, tried until it succeeds or its schedule ends."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("endpoint_id", "event_id", name="uq_webhook_deliveries_event"),
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_endpoint", "endpoint_id", "id"),
    )

    id: int | None = Field(default=None, sa_column=Column(BigIntId, primary_key=True))
    organization_id: int = Field(foreign_key="organizations.id", ondelete="CASCADE")
    endpoint_id: int = Field(foreign_key="webhook_endpoints.id", ondelete="CASCADE")
    # None for a test event, which is not in the outbox.
    event_id: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    event_type: str = Field(max_length=64)
    # The envelope, exactly the bytes sent (and signed) at every attempt.
    payload: str = Field(sa_column=Column(Text, nullable=False))
    # pending, succeeded or failed.
    status: str = Field(default="pending", max_length=16)
    attempts: int = Field(default=0)
    next_attempt_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # Set while a process is sending it: another one leaves it alone until then.
    lease_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_status_code: int | None = None
    last_error: str | None = Field(default=None, max_length=500)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class WebhookAttempt(SQLModel, table=True):
    __tablename__ = "webhook_attempts"

    id: int | None = Field(default=None, sa_column=Column(BigIntId, primary_key=True))
    delivery_id: int = Field(
        sa_column=Column(
            BigIntId,
            ForeignKey("webhook_deliveries.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        )
    )
    attempted_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    status_code: int | None = None
    error: str | None = Field(default=None, max_length=500)
    duration_ms: int = 0
    # The first KiB of the answer, as text.
    response_body: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
