"""The stream consumer: read, run handlers, ack; retry with backoff; dead-letter at the end.

One class owns delivery so handlers stay thin:
- entries are read with XREADGROUP; an entry is acked only after its handlers' database
  transactions committed, each together with its dedup marker (``ProcessedEvent``);
- a failed entry stays pending; it is claimed again (XPENDING, then XCLAIM) once it has
  been idle for its backoff, computed from Redis' own delivery count, so a crash counts as
  an attempt;
- an entry pending on a consumer that has gone quiet for ``EVENT_CLAIM_IDLE_MS`` (killed
  mid-handler) is claimed by another consumer with XAUTOCLAIM; a restarted consumer first
  takes back its own pending entries, with their backoff;
- after the type's ``max_attempts`` deliveries (``EVENT_MAX_ATTEMPTS``, or
  ``EVENT_RETRY_POLICIES``) the entry goes to the dead-letter stream with its envelope,
  error and attempt count, and is acked, so it never blocks the ones behind; an entry that
  was delivered that often without ever finishing (its handler kills the process) goes
  there without running again.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import redis
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import close_old_connections, connection, transaction
from django.utils import timezone

from lokaly_core.domain.backoff import backoff_ms
from lokaly_core.events import Envelope, EventPayload, UnknownEventType
from lokaly_core.orders import idempotency
from lokaly_core.outbox import relay
from lokaly_core.outbox import settle as outbox
from lokaly_core.outbox.models import ProcessedEvent
from lokaly_core.redis_client import StreamEntry, get_redis
from lokaly_worker import metrics
from lokaly_worker.registry import Handler, Registry

logger = logging.getLogger("lokaly.worker")

FAILURES_KEY_SUFFIX = ":failures"
STOPPED_MID_HANDLER = "the worker stopped while handling it (killed, crashed or too slow)"


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int
    base_ms: int
    max_ms: int

    def backoff_ms(self, attempt: int, entry_id: str) -> int:
        return backoff_ms(attempt, entry_id, base_ms=self.base_ms, max_ms=self.max_ms)


@dataclass
class WorkerConfig:
    stream: str
    group: str
    dead_letter_stream: str
    consumer: str
    max_attempts: int
    retry_base_ms: int
    retry_max_ms: int
    claim_idle_ms: int
    block_ms: int = 1000
    batch: int = 64
    maintenance_every_s: float = 0.5
    prune_every_s: float = 60.0
    # Per event type, keys of RetryPolicy; missing keys take the three values above.
    retry_policies: dict[str, dict[str, int]] = field(default_factory=dict)

    def policy(self, event_type: str | None) -> RetryPolicy:
        values = {
            "max_attempts": self.max_attempts,
            "base_ms": self.retry_base_ms,
            "max_ms": self.retry_max_ms,
            **self.retry_policies.get(event_type or "", {}),
        }
        return RetryPolicy(**values)

    def validate(self) -> None:
        for event_type, overrides in self.retry_policies.items():
            unknown = set(overrides) - {"max_attempts", "base_ms", "max_ms"}
            if unknown or not all(isinstance(v, int) and v > 0 for v in overrides.values()):
                raise ImproperlyConfigured(
                    f"EVENT_RETRY_POLICIES[{event_type!r}] must map max_attempts, base_ms "
                    f"and max_ms to positive integers, not {overrides!r}"
                )

    @classmethod
    def from_settings(cls, consumer: str | None = None, **overrides: Any) -> WorkerConfig:
        values: dict[str, Any] = {
            "stream": settings.EVENT_STREAM,
            "group": settings.EVENT_CONSUMER_GROUP,
            "dead_letter_stream": settings.DEAD_LETTER_STREAM,
            "consumer": consumer or f"{socket.gethostname()}-{os.getpid()}",
            "max_attempts": settings.EVENT_MAX_ATTEMPTS,
            "retry_base_ms": settings.EVENT_RETRY_BASE_MS,
            "retry_max_ms": settings.EVENT_RETRY_MAX_MS,
            "claim_idle_ms": settings.EVENT_CLAIM_IDLE_MS,
            "retry_policies": dict(getattr(settings, "EVENT_RETRY_POLICIES", {})),
        }
        values.update(overrides)
        config = cls(**values)
        config.validate()
        return config


@dataclass
class Stats:
    processed: int = 0
    failed: int = 0
    dead_lettered: int = 0
    swept: int = 0
    by_type: dict[str, int] = field(default_factory=dict)


class StreamWorker:
    def __init__(
        self, config: WorkerConfig, registry: Registry, *, client: redis.Redis | None = None
    ):
        self.config = config
        self.registry = registry
        self.redis = client or get_redis()
        self.stats = Stats()
        self.stopping = threading.Event()
        self.failures_key = config.stream + FAILURES_KEY_SUFFIX
        self._next_maintenance = 0.0
        self._next_prune = 0.0
        self._acks: list[str] = []
        self._settled: list[str] = []  # event ids of the entries in _acks
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
        count = 0
        if response:
            close_old_connections()
        for _stream, entries in response or []:
            for entry_id, fields in entries:
                self.process(_text(entry_id), fields, attempt=1)
                count += 1
        self.flush_acks()
        return count

    # -- one entry -------------------------------------------------------------------

    def process(self, entry_id: str, fields: dict[bytes, bytes], *, attempt: int) -> bool:
        """Run every handler for the entry; ack on success (batched: see ``flush_acks``).

        Returns True when the entry is done (processed or dead-lettered).
        """
        started = time.monotonic()
        try:
            envelope = Envelope.from_json(fields[b"envelope"])
        except (KeyError, ValueError, TypeError) as exc:
            self._dead_letter(
                entry_id, fields, error=f"unreadable envelope: {exc!r}", attempts=attempt
            )
            return True
        log = {
            "event_id": str(envelope.event_id),
            "event_type": envelope.type,
            "attempt": attempt,
            "entry_id": entry_id,
            "aggregate_id": str(envelope.aggregate_id),
        }
        policy = self.config.policy(envelope.type)
        if attempt > policy.max_attempts:
            # Delivered max_attempts times and never finished: its handler takes the
            # process down (or outlives the claim idle time), so it is not run again.
            error = self._last_error(entry_id) or STOPPED_MID_HANDLER
            self._dead_letter(entry_id, fields, error=error, attempts=attempt - 1)
            return True
        try:
            payload = envelope.parse()
            self._run_handlers(self.registry.for_type(envelope.type), envelope, payload)
        except UnknownEventType:
            logger.warning(
                "no handler knows this event type; acking it", extra={**log, "outcome": "ignored"}
            )
        except Exception as exc:
            self.stats.failed += 1
            metrics.event_handled(envelope.type, time.monotonic() - started, ok=False)
            error = f"{type(exc).__name__}: {exc}"
            logger.warning(
                "handler failed", extra={**log, "outcome": "failed", "error": error}, exc_info=True
            )
            if attempt >= policy.max_attempts:
                self._dead_letter(entry_id, fields, error=error, attempts=attempt)
                return True
            self._record_failure(entry_id, envelope.type, error)
            return False
        self._ack(entry_id, envelope.event_id)
        self.stats.processed += 1
        self.stats.by_type[envelope.type] = self.stats.by_type.get(envelope.type, 0) + 1
        metrics.event_handled(envelope.type, time.monotonic() - started, ok=True)
        logger.info(
            "event processed",
            extra={**log, "outcome": "ok", "ms": round((time.monotonic() - started) * 1000, 2)},
        )
        return True

    def _run_handlers(
        self, handlers: list[Handler[Any]], envelope: Envelope, payload: EventPayload
    ) -> None:
        """The handlers that want the event: the non-transactional ones first (socket
        broadcasts: nothing to wait for), then the transactional ones together in one
        database transaction with their dedup markers (one statement), so the event's
        effects commit at once or not at all, and a redelivery skips what was done."""
        wanted = [h for h in handlers if h.wants(payload)]
        for handler in wanted:
            if not handler.transactional:
                handler.fn(envelope, payload)
        transactional = [h for h in wanted if h.transactional]
        if not transactional:
            return
        with transaction.atomic():
            fresh = _mark_processed(envelope, transactional)
            for handler in transactional:
                if handler.name not in fresh:
                    logger.info(
                        "duplicate delivery skipped",
                        extra={"event_id": str(envelope.event_id), "handler": handler.name},
                    )
                    continue
                handler.fn(envelope, payload)

    def _ack(self, entry_id: str, event_id: Any = None) -> None:
        """Queue the ack; it is sent with the others of the batch, after their commits."""
        self._acks.append(entry_id)
        if event_id is not None:
            self._settled.append(str(event_id))

    def flush_acks(self) -> None:
        if not self._acks:
            return
        ids, self._acks = self._acks, []
        settled, self._settled = self._settled, []
        if settled:
            # Marked before the ack: a crash in between leaves the entry pending (it is
            # processed again, a no-op thanks to the dedup markers), never acked unmarked.
            outbox.mark_settled(settled, column="processed_at")
        pipe = self.redis.pipeline(transaction=False)
        pipe.xack(self.config.stream, self.config.group, *ids)
        pipe.hdel(self.failures_key, *ids)
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
        pipe.hdel(self.failures_key, entry_id)
        event_id = _text(fields.get(b"event_id", b""))
        if event_id:
            outbox.mark_settled([event_id], column="dead_lettered_at")
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
        try:
            self.stats.swept += relay.sweep()
            if now >= self._next_prune:
                self._next_prune = now + self.config.prune_every_s
                idempotency.prune_expired()
        except Exception:
            logger.exception("outbox sweep or pruning failed; will try again")
        self._run_periodic_tasks()
        try:
            self.retry_due()
        except redis.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            self._recreate_group()

    def _run_periodic_tasks(self) -> None:
        """The registry's ``@every_tick`` tasks (e.g. dispatching due orders); a failure is
        logged and the task runs again at the next turn, never stopping the loop."""
        for task in self.registry.periodic_tasks():
            try:
                task()
            except Exception:
                logger.exception(
                    "periodic task failed; will try again",
                    extra={"task": getattr(task, "__name__", repr(task))},
                )
                close_old_connections()

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
            if self._failure(entry_id) is None:
                self._record_failure(entry_id, event_type, STOPPED_MID_HANDLER)
            wait = self._retry_wait_ms(entry_id, event_type, delivered)
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
                cfg.stream, cfg.group, min="-", max="+", count=200, idle=self._shortest_wait_ms()
            ),
        )
        if not pending:
            return 0
        ids = [_text(p["message_id"]) for p in pending]
        failures = cast("list[bytes | None]", self.redis.hmget(self.failures_key, ids))
        retried = 0
        for info, entry_id, raw in zip(pending, ids, failures, strict=True):
            if raw is None:
                continue  # in flight, or its consumer died: _claim_abandoned's business
            delivered = int(info["times_delivered"])
            idle = int(info["time_since_delivered"])
            if idle >= self._retry_wait_ms(entry_id, _parse_failure(raw)["type"], delivered):
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

    def _retry_wait_ms(self, entry_id: str, event_type: str | None, delivered: int) -> int:
        """The backoff after ``delivered`` attempts, capped at the claim idle time: an entry
        idle that long is taken by XAUTOCLAIM anyway."""
        backoff = self.config.policy(event_type).backoff_ms(delivered, entry_id)
        return min(backoff, self.config.claim_idle_ms)

    def _shortest_wait_ms(self) -> int:
        bases = [self.config.retry_base_ms]
        bases += [p["base_ms"] for p in self.config.retry_policies.values() if "base_ms" in p]
        return min(min(bases) // 2, self.config.claim_idle_ms)

    def _record_failure(self, entry_id: str, event_type: str, error: str) -> None:
        record = json.dumps({"type": event_type, "error": error[:2000]})
        self.redis.hset(self.failures_key, entry_id, record)

    def _failure(self, entry_id: str) -> dict[str, Any] | None:
        raw = cast("bytes | None", self.redis.hget(self.failures_key, entry_id))
        return None if raw is None else _parse_failure(raw)

    def _last_error(self, entry_id: str) -> str | None:
        failure = self._failure(entry_id)
        return None if failure is None else str(failure["error"])


def _parse_failure(raw: bytes | str) -> dict[str, Any]:
    """A failure record: ``{"type", "error"}`` (a bare error string before policies)."""
    try:
        value = json.loads(raw)
    except ValueError:
        value = None
    if isinstance(value, dict) and "error" in value:
        return value
    return {"type": None, "error": _text(raw)}


def _mark_processed(envelope: Envelope, handlers: list[Handler[Any]]) -> set[str]:
    """Insert the handlers' dedup markers; returns the names of those that had none (the
    handlers still to run). A concurrent duplicate waits on the unique index until the
    first transaction ends, then finds the markers there."""
    rows = ", ".join(["(%s, %s, now())"] * len(handlers))
    params: list[Any] = []
    for handler in handlers:
        params += [envelope.event_id, handler.name]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {ProcessedEvent._meta.db_table} (event_id, handler, processed_at) "  # noqa: S608
            f"VALUES {rows} ON CONFLICT (event_id, handler) DO NOTHING RETURNING handler",
            params,
        )
        return {name for (name,) in cursor.fetchall()}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
