"""Dedup markers: one ``ProcessedEvent`` row per (event, handler), written in the handlers'
transaction, so a redelivered event finds them and its effects happen once."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from django.db import connection

from lokaly_core.outbox.models import ProcessedEvent
from lokaly_core.sql import recordset

Marker = tuple[uuid.UUID, str]


def mark_processed(markers: Sequence[Marker]) -> set[Marker]:
    """Insert the markers in one statement; returns those that were new (the handlers
    still to run). A marker twice in ``markers`` is new at most once. A concurrent
    duplicate waits on the unique index until the first transaction ends, then finds the
    marker there."""
    unique = list(dict.fromkeys(markers))
    if not unique:
        return set()
    source, params = recordset(("event_id", "handler"), ("uuid", "text"), unique)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {ProcessedEvent._meta.db_table} (event_id, handler, processed_at) "  # noqa: S608
            f"SELECT event_id, handler, now() FROM {source} "
            "ON CONFLICT (event_id, handler) DO NOTHING RETURNING event_id, handler",
            params,
        )
        return {(uuid.UUID(str(event_id)), name) for event_id, name in cursor.fetchall()}
