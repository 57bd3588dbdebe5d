"""The stream protocol: read, hand batches to the batch runner, ack; claim for retries;
dead-letter at the end.

One class owns delivery so handlers stay thin:
- entries are read with XREADGROUP, a batch at a time (``WorkerConfig.batch``), and run
  by ``lokaly_worker.batch`` in one transaction with their dedup markers; an entry is acked
  only after that transaction committed;
- a failed entry stays pending; it is claimed again (XPENDING, then XCLAIM) once it has
  been idle for its backoff (``lokaly_worker.retry``), computed from Redis' own delivery
  count, so a crash counts as an attempt;
- an entry pending on a consumer that has gone quiet for ``EVENT_CLAIM_IDLE_MS`` (killed
  mid-handler) is claimed by another consumer with XAUTOCLAIM; a restarted consumer first
  takes back its own pending entries, with their backoff;
- after the type's ``max_attempts`` deliveries (``EVENT_MAX_ATTEMPTS``, or
  ``EVENT_RETRY_POLICIES``) the entry goes to the dead-letter stream with its envelope,
  error and attempt count, and is acked, so it never blocks the ones behind; an entry that
  was delivered that often without ever finishing (its handler kills the process) goes
  there without running again.

Its timers (the outbox sweep, pruning idempotency keys, the retry scan) are periodic tasks
next to the registry's (``lokaly_worker.periodic``).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any, cast

import redis
from django.db import close_old_connections
from django.utils import timezone

from lokaly_core.events import Envelope, UnknownEventType
from lokaly_core.orders import idempotency
from lokaly_core.outbox import relay
from lokaly_core.outbox import settle as outbox
from lokaly_core.redis_client import StreamEntry, get_redis
from lokaly_worker import metrics
from lokaly_worker.batch import TRANSIENT_RETRIES, BatchRunner, Item
from lokaly_worker.config import WorkerConfig
from lokaly_worker.periodic import Interval, PeriodicRunner, PeriodicTask
from lokaly_worker.registry import Registry
from lokaly_worker.retry import STOPPED_MID_HANDLER, FailureNotes, is_transient, parse_failure

__all__ = ["STOPPED_MID_HANDLER", "Stats", "StreamWorker", "WorkerConfig"]

logger = logging.getLogger("lokaly.worker")


@dataclasses.dataclass
class Stats:
    processed: int = 0
    failed: int = 0
    dead_lettered: int = 0
    swept: int = 0
    by_type: dict[str, int] = dataclasses.field(default_factory=dict)


class StreamWorker:
    def __init__(
        self, config: WorkerConfig, registry: Registry, *, client: redis.Redis | None = None
    ):
        self.config = config
        self.registry = registry
        self.redis = client or get_redis()
        self.stats = Stats()
        self.stopping = threading.Event()
        self.failures = FailureNotes(self.redis, config.stream)
        self.batches = BatchRunner()
        self._next_maintenance = 0.0
        self.periodic = PeriodicRunner(
            [
                PeriodicTask(self._sweep_outbox),
                PeriodicTask(
                    idempotency.prune_expired,
                    Interval(lambda: config.prune_every_s, at_start=True),
                ),
                *registry.periodic_tasks(),
                PeriodicTask(self._retry_scan),
            ]
        )
        self._acks: list[str] = []
        # (event id, entry id) of the entries in _acks
        self._settled: list[tuple[str, str]] = []
        self._autoclaim_cursor = "0-0"

    # -- lifecycle -------------------------------------------------------------------

    def ensure_group(self) -> None:
        """Create the stream and group if missing (first start, or Redis lost its data)."""
        try:
            self.redis.xgroup_create(self.config.stream, self.config.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def _recreate_group(self) -> None:
        logger.warning(
            "stream or group vanished; recreating them", extra={"stream": self.config.stream}
        )
        self.ensure_group()

    def run(self, *, until: Callable[[], bool] | None = None) -> None:
        """Process events until ``stop()`` is called (or ``until()`` returns True)."""
        self.ensure_group()
        logger.info(
            "worker started", extra={"consumer": self.config.consumer, "stream": self.config.stream}
        )
        with ExitStack() as listening:
            for listener in self.registry.commit_listeners():
                listening.enter_context(relay.listening_to_commits(listener))
            self._drain_own_pending()
            while not self.stopping.is_set() and not (until and until()):
                try:
                    self.tick()
                except (redis.ConnectionError, redis.TimeoutError) as exc:
                    logger.warning("redis unreachable; retrying in 1s", extra={"error": str(exc)})
                    self.stopping.wait(1.0)
        logger.info(
            "worker stopped",
            extra={"consumer": self.config.consumer, "processed": self.stats.processed},
        )

    def stop(self) -> None:
        self.stopping.set()

    def tick(self) -> int:
        """One turn of the loop: maintenance when due, then one blocking read."""
        self._maintenance_if_due()
        if self.stopping.is_set():  # stopping reads nothing more (see run_worker)
            return 0
        return self.run_once()

    def run_once(self) -> int:
        try:
            response = cast(
                "list[tuple[bytes, list[StreamEntry]]] | None",
                self.redis.xreadgroup(
                    self.config.group,
                    self.config.consumer,
                    {self.config.stream: ">"},
                    count=self.config.batch,
                    block=self.config.block_ms,
                ),
            )
        except redis.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            self._recreate_group()
            return 0
        entries = [(_text(i), f, 1) for _stream, batch in response or [] for i, f in batch]
        if entries:
            close_old_connections()
            self.process_batch(entries)
        self.flush_acks()
        return len(entries)

    # -- entries -------------------------------------------------------------------

    def process(self, entry_id: str, fields: dict[bytes, bytes], *, attempt: int) -> bool:
        """Process one entry (a retry, a claim); True when it is done (processed or
        dead-lettered)."""
        return self.process_batch([(entry_id, fields, attempt)]) == 1

    def process_batch(self, entries: list[tuple[str, dict[bytes, bytes], int]]) -> int:
        """Run the entries' handlers as one batch; ack what succeeded (sent with
        ``flush_acks``), note or dead-letter what failed. Returns how many are done."""
        started = time.monotonic()
        done = 0
        items: list[Item] = []
        for entry_id, fields, attempt in entries:
            item = self._prepare(entry_id, fields, attempt)
            if item is None:
                done += 1
            else:
                items.append(item)
        self.batches.run(items)
        for item in items:
            done += self._settle(item, started)
        return done

    def _prepare(self, entry_id: str, fields: dict[bytes, bytes], attempt: int) -> Item | None:
        """The entry parsed with the handlers that want it, or None when it is settled
        here (unreadable, out of attempts, of a type nobody handles)."""
        try:
            envelope = Envelope.from_json(fields[b"envelope"])
        except (KeyError, ValueError, TypeError) as exc:
            self._dead_letter(
                entry_id, fields, error=f"unreadable envelope: {exc!r}", attempts=attempt
            )
            return None
        if attempt > self.config.policy(envelope.type).max_attempts:
            # Delivered max_attempts times and never finished: its handler takes the
            # process down (or outlives the claim idle time), so it is not run again.
            error = self.failures.last_error(entry_id) or STOPPED_MID_HANDLER
            self._dead_letter(entry_id, fields, error=error, attempts=attempt - 1)
            return None
        try:
            payload = envelope.parse()
            handlers = self.registry.for_type(envelope.type)
        except UnknownEventType:
            logger.warning(
                "no handler knows this event type; acking it",
                extra={**_log(entry_id, envelope, attempt), "outcome": "ignored"},
            )
            self._ack(entry_id, envelope.event_id)
            return None
        except Exception as exc:
            item = Item(entry_id, fields, envelope, None, attempt, [])
            item.error, item.exc = f"{type(exc).__name__}: {exc}", exc
            return item
        wanted = [h for h in handlers if h.wants(payload)]
        return Item(entry_id, fields, envelope, payload, attempt, wanted)

    def _settle(self, item: Item, started: float) -> int:
        """Ack a processed item, or note its failure (dead-letter it after its last
        attempt); 1 when it is done."""
        envelope, seconds = item.envelope, time.monotonic() - started
        log = _log(item.entry_id, envelope, item.attempt)
        if item.error is None:
            self._ack(item.entry_id, envelope.event_id)
            self.stats.processed += 1
            self.stats.by_type[envelope.type] = self.stats.by_type.get(envelope.type, 0) + 1
            metrics.event_handled(envelope.type, seconds, ok=True)
            logger.info(
                "event processed", extra={**log, "outcome": "ok", "ms": round(seconds * 1000, 2)}
            )
            return 1
        self.stats.failed += 1
        metrics.event_handled(envelope.type, seconds, ok=False)
        exc = item.exc
        logger.warning(
            "handler failed",
            extra={**log, "outcome": "failed", "error": item.error},
            exc_info=(type(exc), exc, exc.__traceback__) if exc is not None else None,
        )
        if item.attempt >= self.config.policy(envelope.type).max_attempts:
            self._dead_letter(item.entry_id, item.fields, error=item.error, attempts=item.attempt)
            return 1
        self.failures.record(item.entry_id, envelope.type, item.error)
        return 0

    def _ack(self, entry_id: str, event_id: Any = None) -> None:
        """Queue the ack; it is sent with the others of the batch, after their commits."""
        self._acks.append(entry_id)
        if event_id is not None:
            self._settled.append((str(event_id), entry_id))

    def flush_acks(self) -> None:
        if not self._acks:
            return
        ids, self._acks = self._acks, []
        settled, self._settled = self._settled, []
        if settled:
            # Marked before the ack: a crash in between leaves the entry pending (it is
            # processed again, a no-op thanks to the dedup markers), never acked unmarked.
            _mark_settled(settled, column="processed_at")
        pipe = self.redis.pipeline(transaction=False)
        pipe.xack(self.config.stream, self.config.group, *ids)
        pipe.hdel(self.failures.key, *ids)
        pipe.execute()

    def _dead_letter(
        self, entry_id: str, fields: dict[bytes, bytes], *, error: str, attempts: int
    ) -> None:
        envelope_raw = _text(fields.get(b"envelope", b""))
        pipe = self.redis.pipeline(transaction=True)
        pipe.xadd(
            self.config.dead_letter_stream,
            {
                "source_id": entry_id,
                "event_id": _text(fields.get(b"event_id", b"")),
                "type": _text(fields.get(b"type", b"")),
                "error": error[:2000],
                "attempts": str(attempts),
                "failed_at": timezone.now().isoformat(),
                "envelope": envelope_raw,
            },
        )
        pipe.xack(self.config.stream, self.config.group, entry_id)
        pipe.hdel(self.failures.key, entry_id)
        event_id = _text(fields.get(b"event_id", b""))
        if event_id:
            _mark_settled([(event_id, entry_id)], column="dead_lettered_at")
        pipe.execute()
        self.stats.dead_lettered += 1
        metrics.event_dead_lettered(_text(fields.get(b"type", b"")))
        logger.error(
            "event dead-lettered",
            extra={
                "entry_id": entry_id,
                "event_id": _text(fields.get(b"event_id", b"")),
                "event_type": _text(fields.get(b"type", b"")),
                "attempt": attempts,
                "attempts": attempts,
                "error": error,
                "outcome": "dead_letter",
            },
        )

    # -- retries, crashed consumers, the outbox --------------------------------------

    def _maintenance_if_due(self) -> None:
        now = time.monotonic()
        if now < self._next_maintenance:
            return
        self._next_maintenance = now + self.config.maintenance_every_s
        self.periodic.run_due()

    def _sweep_outbox(self) -> None:
        self.stats.swept += relay.sweep()

    def _retry_scan(self) -> None:
        try:
            self.retry_due()
        except redis.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            self._recreate_group()

    def _drain_own_pending(self) -> None:
        """A restarted consumer first takes back what it had read before it stopped.

        Redis' delivery count says how many attempts each entry had, the one this consumer
        died in included: the entry waits its backoff (recorded as a failure, so
        ``retry_due`` runs it once due), and one that had all its attempts goes to the dead
        letters without running again (its handler may be what killed the process).
        """
        cfg = self.config
        pending = cast(
            "list[dict[str, Any]]",
            self.redis.xpending_range(
                cfg.stream, cfg.group, min="-", max="+", count=1000, consumername=cfg.consumer
            ),
        )
        for info in pending:
            entry_id = _text(info["message_id"])
            found = cast(
                "list[StreamEntry]", self.redis.xrange(cfg.stream, min=entry_id, max=entry_id)
            )
            event_type = _text(found[0][1].get(b"type", b"")) if found else ""
            delivered = int(info["times_delivered"])
            if self.failures.get(entry_id) is None:
                self.failures.record(entry_id, event_type, STOPPED_MID_HANDLER)
            wait = cfg.retry_wait_ms(entry_id, event_type, delivered)
            if delivered >= cfg.policy(event_type).max_attempts:
                wait = 0
            idle = int(info["time_since_delivered"])
            if idle >= wait:
                self._claim_and_process(entry_id, idle, attempt=delivered + 1)
        self.flush_acks()

    def retry_due(self) -> int:
        """Re-run failed entries whose backoff has passed, then take over the entries of
        consumers presumed dead."""
        retried = self._retry_failed() + self._claim_abandoned()
        self.flush_acks()
        return retried

    def _retry_failed(self) -> int:
        """Failed entries are selected with XPENDING rather than XAUTOCLAIM: each has a
        backoff of its own (its type's policy, its delivery count, its jitter), which
        XAUTOCLAIM's single idle time cannot express."""
        cfg = self.config
        pending = cast(
            "list[dict[str, Any]]",
            self.redis.xpending_range(
                cfg.stream, cfg.group, min="-", max="+", count=200, idle=cfg.shortest_wait_ms()
            ),
        )
        if not pending:
            return 0
        ids = [_text(p["message_id"]) for p in pending]
        failures = self.failures.many(ids)
        retried = 0
        for info, entry_id, raw in zip(pending, ids, failures, strict=True):
            if raw is None:
                continue  # in flight, or its consumer died: _claim_abandoned's business
            delivered = int(info["times_delivered"])
            idle = int(info["time_since_delivered"])
            if idle >= cfg.retry_wait_ms(entry_id, parse_failure(raw)["type"], delivered):
                retried += self._claim_and_process(entry_id, idle, attempt=delivered + 1)
        return retried

    def _claim_abandoned(self) -> int:
        """XAUTOCLAIM the entries idle past ``claim_idle_ms``: their consumer was killed
        mid-handler (or is stuck). The claim counts as a delivery, so the attempt is the
        entry's delivery count after it, read back with XPENDING."""
        cfg = self.config
        # [next cursor, the claimed entries, and on Redis 7 the ids deleted meanwhile]
        response = cast(
            "list[Any]",
            self.redis.xautoclaim(
                cfg.stream,
                cfg.group,
                cfg.consumer,
                cfg.claim_idle_ms,
                start_id=self._autoclaim_cursor,
                count=cfg.batch,
            ),
        )
        self._autoclaim_cursor = _text(response[0])
        live: list[tuple[str, dict[bytes, bytes]]] = []
        for entry_id, fields in response[1]:
            if fields:
                live.append((_text(entry_id), fields))
            else:  # trimmed away (Redis 6.2 returns it empty): nothing left to process
                self._ack(_text(entry_id))
        if not live:
            return 0
        pipe = self.redis.pipeline(transaction=False)
        for entry_id, _fields in live:
            pipe.xpending_range(
                cfg.stream,
                cfg.group,
                min=entry_id,
                max=entry_id,
                count=1,
                consumername=cfg.consumer,
            )
        for (entry_id, fields), info in zip(live, pipe.execute(), strict=True):
            attempt = int(info[0]["times_delivered"]) if info else 1
            logger.warning(
                "claimed an event from a consumer presumed dead",
                extra={"entry_id": entry_id, "attempt": attempt, "consumer": cfg.consumer},
            )
            metrics.event_retried(_text(fields.get(b"type", b"")))
            self.process(entry_id, fields, attempt=attempt)
        return len(live)

    def _claim_and_process(self, entry_id: str, min_idle_ms: int, *, attempt: int) -> int:
        """XCLAIM the entry if it is still idle ``min_idle_ms`` (no other consumer took it
        meanwhile), then process it; 1 when it was processed."""
        cfg = self.config
        claimed = cast(
            "list[StreamEntry]",
            self.redis.xclaim(cfg.stream, cfg.group, cfg.consumer, min_idle_ms, [entry_id]),
        )
        done = 0
        for claimed_id, fields in claimed:
            if not fields:  # trimmed away meanwhile: nothing left to process
                self._ack(_text(claimed_id))
                continue
            done += 1
            metrics.event_retried(_text(fields.get(b"type", b"")))
            self.process(_text(claimed_id), fields, attempt=attempt)
        return done


def _log(entry_id: str, envelope: Envelope, attempt: int) -> dict[str, Any]:
    return {
        "event_id": str(envelope.event_id),
        "event_type": envelope.type,
        "attempt": attempt,
        "entry_id": entry_id,
        "aggregate_id": str(envelope.aggregate_id),
    }


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _mark_settled(entries: list[tuple[str, str]], *, column: str) -> None:
    """``settle.mark_settled``, run again at once when it loses a race (a deadlock or a
    serialization failure, with a publisher marking the same rows): the worker's loop
    must not end on it."""
    for retry in range(TRANSIENT_RETRIES + 1):
        try:
            outbox.mark_settled(entries, column=column)
            return
        except Exception as exc:
            if not is_transient(exc) or retry == TRANSIENT_RETRIES:
                raise
            logger.info(
                "outbox marks lost a race; running them again",
                extra={"events": len(entries), "retry": retry + 1, "error": str(exc)},
            )
