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
    # A plain UPDATE, its row locks taken in whatever order the plan visits the rows: the
    # other writers of these rows never wait for a row lock (the publishers' marks skip
    # locked rows, the sweep and ``events reconcile`` lock theirs with SKIP LOCKED first),
    # so no wait cycle can form with them. Ordering the locks here (a locking CTE, as
    # before) cost a lock record per row and made the statement 3.4x slower (0.76 ms
    # against 0.22 for 12 rows, docs/performance.md, sixth session). Two workers settling
    # the same entries (one claimed the other's) may still deadlock; the worker runs its
    # marks again then (``lokaly_worker.consumer._mark_settled``).
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} AS o SET {column} = now(), "  # noqa: S608 - ours
            "published_at = COALESCE(o.published_at, now()), "
            "stream_id = CASE WHEN o.published_at IS NULL THEN v.stream_id ELSE o.stream_id END "
            f"FROM {source} WHERE o.event_id = v.event_id AND o.{column} IS NULL",
            params,
        )
