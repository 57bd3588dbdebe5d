"""The outbox relay: puts committed events on the Redis stream.

Right after a transaction commits, its events are published (``publish_after_commit``).
Rows a crash or a Redis outage left behind are published by ``sweep``, which the worker
runs every second. An event may thus reach the stream twice; consumers deduplicate.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta

import redis
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from lokaly_core.events import Envelope
from lokaly_core.outbox.models import OutboxEvent
from lokaly_core.redis_client import get_redis

logger = logging.getLogger("lokaly.outbox")


def envelope_of(row: OutboxEvent) -> Envelope:
    return Envelope(
        event_id=row.event_id,
        type=row.type,
        schema_version=row.schema_version,
        occurred_at=row.occurred_at,
        aggregate_id=row.aggregate_id,
        payload=row.payload,
    )


def _xadd_all(envelopes: Sequence[Envelope]) -> list[str]:
    pipe = get_redis().pipeline(transaction=False)
    for env in envelopes:
        pipe.xadd(
            settings.EVENT_STREAM,
            {"event_id": str(env.event_id), "type": env.type, "envelope": env.to_json()},
        )
    return [sid.decode() if isinstance(sid, bytes) else str(sid) for sid in pipe.execute()]


def publish_after_commit(envelopes: Sequence[Envelope]) -> None:
    """Publish just-committed events. Never raises: the sweep retries what failed here."""
    try:
        stream_ids = _xadd_all(envelopes)
    except redis.RedisError as exc:
        logger.warning(
            "publish deferred to the outbox sweep",
            extra={"event_ids": [str(e.event_id) for e in envelopes], "error": str(exc)},
        )
        return
    try:
        _mark_published(envelopes, stream_ids)
    except Exception:  # the events are out; a second publish by the sweep is harmless
        logger.exception("could not mark events published")


def _mark_published(envelopes: Sequence[Envelope], stream_ids: Sequence[str]) -> None:
    now = timezone.now()
    if len(envelopes) == 1:
        OutboxEvent.objects.filter(event_id=envelopes[0].event_id).update(
            published_at=now, stream_id=stream_ids[0]
        )
        return
    rows = [
        OutboxEvent(event_id=e.event_id, published_at=now, stream_id=sid)
        for e, sid in zip(envelopes, stream_ids, strict=True)
    ]
    OutboxEvent.objects.bulk_update(rows, ["published_at", "stream_id"])


def sweep(*, limit: int = 500, older_than_ms: int | None = None) -> int:
    """Publish outbox rows still unpublished after a grace period; returns how many."""
    grace = settings.OUTBOX_SWEEP_AFTER_MS if older_than_ms is None else older_than_ms
    cutoff = timezone.now() - timedelta(milliseconds=grace)
    with transaction.atomic():
        rows = list(
            OutboxEvent.objects.select_for_update(skip_locked=True)
            .filter(published_at__isnull=True, created_at__lte=cutoff)
            .order_by("created_at")[:limit]
        )
        if not rows:
            return 0
        envelopes = [envelope_of(row) for row in rows]
        stream_ids = _xadd_all(envelopes)
        _mark_published(envelopes, stream_ids)
    logger.info("outbox sweep published events", extra={"count": len(rows)})
    return len(rows)
