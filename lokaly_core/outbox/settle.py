"""Marking outbox rows settled: processed by the worker, or dead-lettered."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from django.db import connection

from lokaly_core.outbox.models import OutboxEvent
from lokaly_core.sql import unnest

_COLUMNS = frozenset({"processed_at", "dead_lettered_at"})


def mark_settled(entries: Sequence[tuple[str, str]], *, column: str) -> None:
    """Stamp ``column`` (``processed_at`` or ``dead_lettered_at``) on the rows of
    ``entries`` (event id, the id of the stream entry the worker read it from), in one
    statement. Event ids that are not in the outbox (published by hand) are ignored.

    A row the publisher has not marked published yet (its marks come up to
    ``_Publisher.MARK_EVERY_S`` after the publish) is marked here too, with the entry's
    id: the worker read it from the stream, so it is published. The publisher's mark then
    finds the row marked and leaves it alone (``relay._mark_published``): one new version
    of the row instead of two (at 32 customers the two statements read 238 buffers and
    wrote 37 WAL records per order before, 174 and 21 with this: docs/performance.md,
    sixth session)."""
    if column not in _COLUMNS:
        raise ValueError(column)
    rows = []
    for event_id, stream_id in entries:
        try:
            rows.append((uuid.UUID(str(event_id)), stream_id))
        except ValueError:
            continue
    if not rows:
        return
    source, params = unnest(("event_id", "stream_id"), ("uuid", "text"), rows)
    table = OutboxEvent._meta.db_table
    # The rows locked in event id order, as the publishers lock them to mark them
    # published (relay._mark_published): the two update the same rows at about the same
    # time, and rows locked in two orders deadlock.
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH v AS MATERIALIZED (SELECT * FROM {source}), "  # noqa: S608 - ours
            f"locked AS MATERIALIZED (SELECT o.event_id FROM {table} o JOIN v USING (event_id) "
            f"WHERE o.{column} IS NULL ORDER BY o.event_id FOR UPDATE OF o) "
            f"UPDATE {table} AS o SET {column} = now(), "
            "published_at = COALESCE(o.published_at, now()), "
            "stream_id = CASE WHEN o.published_at IS NULL THEN v.stream_id ELSE o.stream_id END "
            "FROM v JOIN locked USING (event_id) WHERE o.event_id = v.event_id",
            params,
        )
