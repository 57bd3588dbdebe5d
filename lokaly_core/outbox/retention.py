"""Bounded memory: trimming the streams and pruning the outbox and dedup markers.

- ``trim_stream``: XTRIM MINID below the oldest entry some consumer group still needs:
  for each group the oldest pending entry (XPENDING) and the first entry after its
  last-delivered-id (the unread ones); the minimum over the groups. Nothing is trimmed
  when the stream has no group or a group's position is unknown. Groups only move
  forward, so a group advancing between the reading and the XTRIM only means less is
  trimmed than could be.
- ``trim_dead_letters``: the dead-letter stream keeps about ``DEAD_LETTER_MAXLEN``
  entries (approximate MAXLEN: whole macro nodes, cheap), the oldest go first.
- ``prune_outbox``: settled rows (processed or dead-lettered) older than
  ``OUTBOX_RETENTION_HOURS``; unpublished and unsettled rows are never touched.
- ``prune_processed_events``: dedup markers older than ``DEDUP_RETENTION_HOURS``, which
  must exceed how late a redelivery can come (an event is settled within its retries;
  a reconcile only republishes unsettled rows).

Deletes go in batches of ``RETENTION_BATCH`` rows, one short transaction each.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, cast

import redis
from django.conf import settings
from django.db import connection
from django.db.models import Q, QuerySet
from django.utils import timezone

from lokaly_core.outbox.models import OutboxEvent, ProcessedEvent
from lokaly_core.redis_client import get_redis


def _id_key(entry_id: bytes | str) -> tuple[int, int]:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def trim_floor(stream: str, *, client: redis.Redis | None = None) -> str | None:
    """The lowest entry id some group of ``stream`` still needs, or None when nothing may
    be trimmed (no stream, no group, a group of unknown position)."""
    client = client or get_redis()
    try:
        groups = cast("list[dict[str, Any]]", client.xinfo_groups(stream))
    except redis.ResponseError as exc:
        if "no such key" in str(exc).lower():
            return None
        raise
    if not groups:
        return None
    floor: tuple[int, int] | None = None
    for group in groups:
        last = group.get("last-delivered-id")
        if not last:
            return None
        ms, seq = _id_key(last)
        needed = (ms, seq + 1)  # the first entry the group has not read yet
        pending = cast("dict[str, Any]", client.xpending(stream, group["name"]))
        if pending["pending"] and pending["min"]:
            needed = min(needed, _id_key(pending["min"]))
        floor = needed if floor is None else min(floor, needed)
    return None if floor is None else f"{floor[0]}-{floor[1]}"


def trim_stream(stream: str | None = None, *, client: redis.Redis | None = None) -> int:
    """Trim the entries of ``stream`` (default ``EVENT_STREAM``) every group is done
    with; returns how many were removed."""
    client = client or get_redis()
    stream = stream or settings.EVENT_STREAM
    floor = trim_floor(stream, client=client)
    if floor is None:
        return 0
    return cast(int, client.xtrim(stream, minid=floor, approximate=False))


def trim_dead_letters(*, client: redis.Redis | None = None) -> int:
    """Keep about ``DEAD_LETTER_MAXLEN`` dead letters, dropping the oldest."""
    client = client or get_redis()
    return cast(
        int,
        client.xtrim(
            settings.DEAD_LETTER_STREAM, maxlen=settings.DEAD_LETTER_MAXLEN, approximate=True
        ),
    )


def prune_outbox(*, batch: int | None = None, max_batches: int = 10) -> int:
    """Delete settled outbox rows created more than ``OUTBOX_RETENTION_HOURS`` ago."""
    cutoff = timezone.now() - timedelta(hours=settings.OUTBOX_RETENTION_HOURS)
    settled = Q(processed_at__isnull=False) | Q(dead_lettered_at__isnull=False)
    rows = OutboxEvent.objects.filter(settled, published_at__isnull=False, created_at__lt=cutoff)
    return _delete_in_batches(rows, batch=batch, max_batches=max_batches)


def prune_processed_events(*, batch: int | None = None, max_batches: int = 10) -> int:
    """Delete dedup markers older than ``DEDUP_RETENTION_HOURS``."""
    cutoff = timezone.now() - timedelta(hours=settings.DEDUP_RETENTION_HOURS)
    rows = ProcessedEvent.objects.filter(processed_at__lt=cutoff)
    return _delete_in_batches(rows, batch=batch, max_batches=max_batches)


def _delete_in_batches(rows: QuerySet[Any], *, batch: int | None, max_batches: int) -> int:
    """``DELETE ... WHERE pk IN (SELECT pk ... LIMIT batch)`` until none is left or
    ``max_batches`` ran (the next call goes on); returns how many rows went."""
    size = batch or settings.RETENTION_BATCH
    model = rows.model
    pk = model._meta.pk.column
    select_sql, params = rows.values("pk")[:size].query.sql_with_params()
    total = 0
    for _ in range(max_batches):
        with connection.cursor() as cursor:
            cursor.execute(
                f"DELETE FROM {model._meta.db_table} WHERE {pk} IN ({select_sql})",  # noqa: S608
                params,
            )
            deleted = cursor.rowcount
        total += deleted
        if deleted < size:
            break
    return total
