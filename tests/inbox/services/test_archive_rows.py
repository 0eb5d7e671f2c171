"""The archive's records of stored deliveries are written through the driver: with every
column of the table, read back by the models as any other row."""

from __future__ import annotations

from inbox.models import WebhookRecord, table_of
from inbox.services.webhook_archive.rows import COLUMNS


def test_every_column_but_the_id_is_written() -> None:
    table = table_of(WebhookRecord)
    assert set(COLUMNS) == {c.name for c in table.columns} - {"id"}
