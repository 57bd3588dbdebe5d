"""Publishing again what Redis lost: outbox rows published but never settled.

An outbox row is settled once the worker processed its event (``processed_at``, stamped
before the ack) or dead-lettered it (``dead_lettered_at``). A row published long ago and
still unsettled had its stream entry lost (Redis restarted without persistence, a
FLUSHALL, a failover to a replica that had not received it) unless the entry is still on
the stream, waiting for a worker or a retry. ``reconcile`` checks each such row's entry
(its ``stream_id`` and ``event_id``) and publishes the event again when it is gone; a
repeat is harmless, handlers skip what their dedup markers say is done.

A republished row gets a fresh ``published_at``, so a second run within the minimum age
finds nothing, and two runs at once skip each other's rows (``SKIP LOCKED``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

import redis
from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from lokaly_core.outbox.models import OutboxEvent
from lokaly_core.outbox.relay import _mark_published, _xadd_all, envelope_of
from lokaly_core.redis_client import get_redis


@dataclass
class ReconcileResult:
    checked: int = 0
    on_stream: int = 0
    republished: int = 0
    dry_run: bool = False


def unsettled(*, older_than_s: float) -> QuerySet[OutboxEvent]:
    """Rows published at least ``older_than_s`` seconds ago and neither processed nor
    dead-lettered (served by the partial index ``outbox_unsettled_idx``)."""
    cutoff = timezone.now() - timedelta(seconds=older_than_s)
    return OutboxEvent.objects.filter(
        published_at__isnull=False,
        published_at__lte=cutoff,
        processed_at__isnull=True,
        dead_lettered_at__isnull=True,
    )


def reconcile(
    *,
    older_than_s: float,
    dry_run: bool = False,
    batch: int = 500,
    limit: int | None = None,
    on_batch: Callable[[ReconcileResult, list[OutboxEvent]], None] | None = None,
) -> ReconcileResult:
    """Publish again the unsettled rows older than ``older_than_s`` whose stream entry is
    gone; at most ``limit`` rows looked at (None: all). ``on_batch(totals, republished)``
    after each batch. With ``dry_run`` nothing is published or changed."""
    result = ReconcileResult(dry_run=dry_run)
    candidates = unsettled(older_than_s=older_than_s).order_by("published_at", "event_id")
    after: tuple[datetime, UUID] | None = None
    while limit is None or result.checked < limit:
        size = batch if limit is None else min(batch, limit - result.checked)
        with transaction.atomic():
            page = candidates.select_for_update(skip_locked=True)
            if after is not None:
                page = page.filter(
                    Q(published_at__gt=after[0]) | Q(published_at=after[0], event_id__gt=after[1])
                )
            rows = list(page[:size])
            if not rows:
                break
            after = (rows[-1].published_at, rows[-1].event_id)  # type: ignore[assignment]
            present = _on_stream(rows)
            lost = [row for row in rows if row.event_id not in present]
            if lost and not dry_run:
                envelopes = [envelope_of(row) for row in lost]
                _mark_published(list(zip(envelopes, _xadd_all(envelopes), strict=True)))
        result.checked += len(rows)
        result.on_stream += len(rows) - len(lost)
        result.republished += len(lost)
        if on_batch is not None:
            on_batch(result, lost)
    return result


def _on_stream(rows: Sequence[OutboxEvent]) -> set[UUID]:
    """The event ids of ``rows`` whose entry is still on the event stream (same id, same
    event: after a flush a new entry may reuse an old id)."""
    with_ids = [row for row in rows if row.stream_id]
    if not with_ids:
        return set()
    pipe = get_redis().pipeline(transaction=False)
    for row in with_ids:
        pipe.xrange(settings.EVENT_STREAM, min=row.stream_id, max=row.stream_id)
    present: set[UUID] = set()
    for row, entries in zip(with_ids, pipe.execute(raise_on_error=False), strict=True):
        if isinstance(entries, redis.ResponseError) or not entries:
            continue  # an unparsable stream_id is treated as lost
        fields = entries[0][1]
        if fields.get(b"event_id", b"").decode() == str(row.event_id):
            present.add(row.event_id)
    return present
