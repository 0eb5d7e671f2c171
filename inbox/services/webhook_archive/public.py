"""A recorded webhook request as the API and the command line show it."""

from __future__ import annotations

import base64

from ...models import WebhookRecord
from ...schemas.webhook_log import WebhookRecordPublic


def record_public(row: WebhookRecord) -> WebhookRecordPublic:
    assert row.id is not None
    try:
        body, encoding = row.body.decode("utf-8"), "text"
    except UnicodeDecodeError:
        body, encoding = base64.b64encode(row.body).decode("ascii"), "base64"
    return WebhookRecordPublic(
        id=row.id,
        kind=row.kind,
        channel_id=row.channel_id,
        received_at=row.received_at,
        method=row.method,
        url=row.url,
        headers=row.headers,
        body=body,
        body_encoding=encoding,
        outcome=row.outcome,
        status=row.status,
        error=row.error,
        replay_of=row.replay_of,
    )
