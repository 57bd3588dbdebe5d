"""Marking outbox rows settled: processed by the worker, or dead-lettered."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from django.db import connection

from lokaly_core.outbox.models import OutboxEvent

_COLUMNS = frozenset({"processed_at", "dead_lettered_at"})


def mark_settled(event_ids: Sequence[str], *, column: str) -> None:
    """Stamp ``column`` (``processed_at`` or ``dead_lettered_at``) on the rows, in one
    statement. Event ids that are not in the outbox (published by hand) are ignored."""
    if column not in _COLUMNS:
        raise ValueError(column)
    ids = []
    for value in event_ids:
        try:
            ids.append(uuid.UUID(str(value)))
        except ValueError:
            continue
    if not ids:
        return
    table = OutboxEvent._meta.db_table
    # The rows locked in event id order, as the publishers lock them to mark them
    # published (relay._mark_published): the two update the same rows at about the same
    # time, and rows locked in two orders deadlock.
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH locked AS MATERIALIZED (SELECT event_id FROM {table} "  # noqa: S608 - ours
            f"WHERE event_id = ANY(%s) AND {column} IS NULL ORDER BY event_id FOR UPDATE) "
            f"UPDATE {table} AS o SET {column} = now() FROM locked "
            "WHERE o.event_id = locked.event_id",
            [ids],
        )
