"""The event recorder port: events written to the outbox in the current transaction."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from django.db import connection
from django.utils import timezone
from psycopg.types.json import Jsonb

from lokaly_core.events import Envelope, EventPayload
from lokaly_core.outbox.models import OutboxEvent
from lokaly_core.sql import SqlParams, insert_recordset, insert_rows

_OUTBOX_COLUMNS = (
    "event_id",
    "type",
    "schema_version",
    "occurred_at",
    "aggregate_id",
    "payload",
    "created_at",
    "stream_id",
)


def outbox_insert(envelopes: list[Envelope], *, batch: bool = False) -> tuple[str, SqlParams]:
    """The multi-row INSERT of ``envelopes`` into the outbox (unpublished): a ``VALUES``
    list (the intake's single statement builds on that form), or with ``batch`` the rows
    as one JSON document, whose text is the same for any number of events (a worker
    batch's; ``sql.insert_recordset``).
    """
    now = timezone.now()
    rows = [
        (
            e.event_id,
            e.type,
            e.schema_version,
            e.occurred_at,
            e.aggregate_id,
            Jsonb(e.payload),
            now,
            "",
        )
        for e in envelopes
    ]
    return (insert_recordset if batch else insert_rows)(OutboxEvent, _OUTBOX_COLUMNS, rows)


class OutboxRecorder:
    def __init__(self) -> None:
        self.pending: list[Envelope] = []

    def record(self, event: EventPayload, *, aggregate_id: UUID, occurred_at: datetime) -> None:
        self.pending.append(
            Envelope.wrap(event, aggregate_id=aggregate_id, occurred_at=occurred_at)
        )

    def flush(self) -> list[Envelope]:
        envelopes, self.pending = self.pending, []
        if envelopes:
            with connection.cursor() as cursor:
                cursor.execute(*outbox_insert(envelopes, batch=True))
        return envelopes
