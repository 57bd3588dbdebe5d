"""A worker batch's outbox rows go in as one JSON document (``sql.insert_recordset``): each row
reads back as the event was recorded, whatever its payload holds, and the statement's
text and parameters do not grow with the batch in number (one parameter)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from django.db import connection

from lokaly_core.events import Envelope
from lokaly_core.outbox.models import OutboxEvent
from lokaly_core.outbox.recorder import outbox_insert

pytestmark = pytest.mark.django_db

PAYLOADS: list[dict[str, Any]] = [
    {"order_id": str(uuid.uuid4()), "lines": [{"product_id": "p", "quantity": 2}]},
    {"note": 'quotes " and \\ backslashes, {braces}, commas, NULL', "n": None},
    {"text": "Grüße, 注文, emoji 🛒, line\nbreak\ttab", "nested": {"a": [1, 2.5, True]}},
    {},
]


def _envelopes() -> list[Envelope]:
    return [
        Envelope(
            event_id=uuid.uuid4(),
            type="order.created",
            schema_version=n + 1,
            occurred_at=datetime(2026, 12, 1, 20, 15, n, 123456 + n, tzinfo=UTC),
            aggregate_id=uuid.uuid4(),
            payload=payload,
        )
        for n, payload in enumerate(PAYLOADS)
    ]


def test_a_batchs_rows_read_back_as_recorded() -> None:
    envelopes = _envelopes()
    sql, params = outbox_insert(envelopes, batch=True)

    with connection.cursor() as cursor:
        cursor.execute(sql, params)

    rows = {row.event_id: row for row in OutboxEvent.objects.all()}
    assert len(rows) == len(envelopes)
    for e in envelopes:
        row = rows[e.event_id]
        assert (row.type, row.schema_version, row.aggregate_id) == (
            e.type,
            e.schema_version,
            e.aggregate_id,
        )
        assert row.occurred_at == e.occurred_at  # to the microsecond
        assert row.payload == e.payload
        assert (row.published_at, row.stream_id) == (None, "")


def test_the_statement_is_the_same_for_any_batch() -> None:
    one_sql, one_params = outbox_insert(_envelopes()[:1], batch=True)
    many_sql, many_params = outbox_insert(_envelopes() * 5, batch=True)

    assert one_sql == many_sql
    assert len(one_params) == len(many_params) == 1
