"""The outbox relay: puts committed events on the Redis stream.

Right after a transaction commits, its events are handed to a publisher thread of the
process (``publish_after_commit``), which puts them on the stream in batches at once and
marks their outbox rows published at most ``_Publisher.MARK_EVERY_S`` later, the marks of
that time in one statement: the request that committed them does no extra I/O, and the
marks cost one statement per interval, not one per batch (a batch is mostly one request's
event: the statement was an eighth of PostgreSQL's time per order, docs/performance.md).
Rows a crash or a Redis outage left behind are published by ``sweep``, which the worker
runs twice a second for rows older than ``OUTBOX_SWEEP_AFTER_MS`` (2 s, well past the
marks' delay). An event may thus reach the stream twice; consumers deduplicate.
"""

from __future__ import annotations

import atexit
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta

import redis
from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.utils import timezone

from lokaly_core.events import Envelope
from lokaly_core.outbox.models import OutboxEvent
from lokaly_core.redis_client import get_redis
from lokaly_core.sql import unnest

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


class _Publisher:
    """A daemon thread that publishes what committed transactions hand it, in batches."""

    MAX_BATCH = 500
    # How long a published event's outbox row may stay unmarked: its mark waits for the
    # others of this interval (well under OUTBOX_SWEEP_AFTER_MS, after which the sweep
    # would publish it again).
    MARK_EVERY_S = 0.2

    def __init__(self) -> None:
        self.queue: queue.SimpleQueue[list[Envelope] | None] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._run, name="outbox-publisher", daemon=True)
        self.thread.start()
        atexit.register(self.close)

    def submit(self, envelopes: list[Envelope]) -> None:
        self.queue.put(envelopes)

    def close(self, timeout: float = 5.0) -> None:
        self.queue.put(None)
        self.thread.join(timeout)

    def _run(self) -> None:
        unmarked: list[tuple[Envelope, str]] = []  # on the stream, their rows not yet marked
        mark_at = 0.0
        stopping = False
        while not stopping:
            try:
                wait = max(0.0, mark_at - time.monotonic()) if unmarked else None
                batch = self.queue.get(timeout=wait)
            except queue.Empty:
                batch = []
            if batch is None:
                stopping, batch = True, []
            while batch and len(batch) < self.MAX_BATCH:
                try:
                    more = self.queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stopping = True
                    break
                batch.extend(more)
            if batch:
                if not unmarked:
                    mark_at = time.monotonic() + self.MARK_EVERY_S
                unmarked += _publish(batch)
            if unmarked and (
                stopping or len(unmarked) >= self.MAX_BATCH or time.monotonic() >= mark_at
            ):
                # As Django does around each request, and the worker's threads around each
                # turn: drop this thread's connection if it is obsolete, broken, or not in
                # autocommit any more. The last happens when connecting failed half-way
                # (after the socket was open, before autocommit was set: the test suite's
                # database blocker raises there between tests); reused, every UPDATE would
                # then open a transaction that is never committed, holding its locks.
                try:
                    close_old_connections()
                except Exception:  # no database (an outage): the sweep publishes them again
                    logger.warning(
                        "could not mark events published",
                        extra={"event_ids": [str(e.event_id) for e, _ in unmarked]},
                        exc_info=True,
                    )
                else:
                    _mark(unmarked)
                unmarked = []
        connection.close()


_publisher: _Publisher | None = None
_publisher_lock = threading.Lock()


def stop_publisher() -> None:
    """Publish what is queued and stop the thread (tests, shutdown)."""
    global _publisher
    with _publisher_lock:
        if _publisher is not None:
            _publisher.close()
            _publisher = None


CommitListener = Callable[[Sequence[Envelope]], None]
# Called in this process with the events of every committed transaction, after they are
# handed to the publisher: the worker's socket broadcast of the status changes it just
# made (lokaly_worker/handlers.py). A listener's error is logged, never raised.
_commit_listeners: list[CommitListener] = []


@contextmanager
def listening_to_commits(listener: CommitListener) -> Iterator[None]:
    """Call ``listener`` with each committed transaction's events while inside."""
    _commit_listeners.append(listener)
    try:
        yield
    finally:
        _commit_listeners.remove(listener)


def publish_after_commit(envelopes: Sequence[Envelope]) -> None:
    """Hand just-committed events to the publisher (``OUTBOX_PUBLISH=inline``: publish here)."""
    global _publisher
    if settings.OUTBOX_PUBLISH == "inline":
        publish_now(list(envelopes))
    else:
        if _publisher is None or not _publisher.thread.is_alive():
            with _publisher_lock:
                if _publisher is None or not _publisher.thread.is_alive():
                    _publisher = _Publisher()
        _publisher.submit(list(envelopes))
    for listener in list(_commit_listeners):
        try:
            listener(envelopes)
        except Exception:  # the events are committed and on their way: only this is lost
            logger.warning(
                "commit listener failed",
                extra={"event_ids": [str(e.event_id) for e in envelopes]},
                exc_info=True,
            )


def publish_now(envelopes: Sequence[Envelope]) -> None:
    """Publish committed events and mark them. Never raises: the sweep retries failures."""
    _mark(_publish(envelopes))


def _publish(envelopes: Sequence[Envelope]) -> list[tuple[Envelope, str]]:
    """Put committed events on the stream: each with its stream id; none when Redis
    refused them (logged; the sweep publishes them later). Never raises."""
    try:
        stream_ids = _xadd_all(envelopes)
    except redis.RedisError as exc:
        logger.warning(
            "publish deferred to the outbox sweep",
            extra={"event_ids": [str(e.event_id) for e in envelopes], "error": str(exc)},
        )
        return []
    return list(zip(envelopes, stream_ids, strict=True))


def _mark(published: Sequence[tuple[Envelope, str]]) -> None:
    """Mark published events' outbox rows, but those the worker marked meanwhile (it
    settled them: ``settle.mark_settled`` marks them published too). Never raises: a row
    left unmarked is published again by the sweep, which is harmless."""
    if not published:
        return
    try:
        _mark_published(published, unmarked_only=True)
    except Exception:
        logger.exception(
            "could not mark events published",
            extra={"event_ids": [str(e.event_id) for e, _ in published]},
        )


def _mark_published(
    published: Sequence[tuple[Envelope, str]], *, unmarked_only: bool = False
) -> None:
    """Mark the rows published (again: the sweep and ``events reconcile`` publish rows
    anew, rows they hold locked already), or with ``unmarked_only`` (the publishers'
    marks) only those not marked yet and not locked: a row locked at that moment is being
    settled by a worker, which marks it published too, or swept, which marks it itself.
    So a publisher never waits for a row lock, and the worker's settle marks, which do,
    cannot deadlock with it (seen in bench when both waited, locking rows in two orders).
    The rows are locked in event id order all the same."""
    source, params = unnest(
        ("event_id", "stream_id"),
        ("uuid", "text"),
        [(e.event_id, stream_id) for e, stream_id in published],
    )
    table = OutboxEvent._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH v AS MATERIALIZED (SELECT * FROM {source}), "  # noqa: S608 - ours
            f"locked AS MATERIALIZED (SELECT o.event_id FROM {table} o JOIN v USING (event_id) "
            f"{'WHERE o.published_at IS NULL ' if unmarked_only else ''}"
            f"ORDER BY o.event_id FOR UPDATE OF o{' SKIP LOCKED' if unmarked_only else ''}) "
            f"UPDATE {table} AS o SET published_at = now(), stream_id = v.stream_id "
            "FROM v JOIN locked USING (event_id) WHERE o.event_id = v.event_id",
            params,
        )


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
        _mark_published(list(zip(envelopes, _xadd_all(envelopes), strict=True)))
    logger.info("outbox sweep published events", extra={"count": len(rows)})
    return len(rows)
