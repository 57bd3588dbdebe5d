"""The worker's Prometheus metrics, served over HTTP on ``WORKER_METRICS_PORT``.

Counters and the latency histogram are updated by the consumer as it handles entries
(``lokaly_worker.consumer``). The gauges need Redis and database reads, so one background
thread refreshes them every ``WORKER_METRICS_REFRESH_SECONDS`` (default 5) rather than on
every scrape: a scrape never touches Redis or PostgreSQL, and the thread holds one
database connection however often Prometheus scrapes.

Every worker reports the same stream- and outbox-wide gauges (they describe the shared
pipeline, not the process): aggregate them with ``max``, not ``sum``.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from django.db import close_old_connections
from prometheus_client import Counter, Gauge, Histogram, start_http_server

from lokaly_core.conf.env import env, env_int
from lokaly_core.pipeline_health import pipeline_health

logger = logging.getLogger("lokaly.worker")

DEFAULT_PORT = 9100

EVENTS_PROCESSED = Counter(
    "lokaly_worker_events_processed", "Events whose handlers all succeeded (acked).", ["type"]
)
EVENTS_FAILED = Counter(
    "lokaly_worker_events_failed", "Handler runs that raised (each failed attempt).", ["type"]
)
HANDLER_SECONDS = Histogram(
    "lokaly_worker_handler_seconds",
    "Time to run an event's handlers, successful or not.",
    ["type"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
RETRIES = Counter(
    "lokaly_worker_retries", "Pending entries claimed again for another attempt.", ["type"]
)
DEAD_LETTERED = Counter(
    "lokaly_worker_dead_lettered", "Events moved to the dead-letter stream.", ["type"]
)

STREAM_LENGTH = Gauge("lokaly_events_stream_length", "Entries in the event stream.")
STREAM_LAG = Gauge(
    "lokaly_events_stream_lag", "Entries the consumer group has not read yet.", ["group"]
)
PENDING = Gauge("lokaly_events_pending", "Entries read but not acked yet.", ["group"])
OLDEST_PENDING_AGE = Gauge(
    "lokaly_events_oldest_pending_age_seconds",
    "Age of the oldest pending entry (0 when none).",
    ["group"],
)
DEAD_LETTERS = Gauge("lokaly_events_dead_letters", "Entries in the dead-letter stream.")
OUTBOX_UNPUBLISHED = Gauge("lokaly_outbox_unpublished", "Outbox rows not yet published.")
OUTBOX_OLDEST_AGE = Gauge(
    "lokaly_outbox_oldest_unpublished_age_seconds",
    "Age of the oldest unpublished outbox row (0 when none).",
)
DISPATCH_WAITING = Gauge("lokaly_dispatch_waiting", "Confirmed orders waiting for a free courier.")
DISPATCH_OLDEST_WAIT = Gauge(
    "lokaly_dispatch_oldest_wait_seconds", "How long the longest-waiting order has waited."
)
NOTIFICATIONS_PENDING = Gauge("lokaly_notifications_pending", "Notifications not yet sent.")
NOTIFICATIONS_FAILED = Gauge(
    "lokaly_notifications_failed", "Notifications given up on after their last attempt."
)
GAUGES_REFRESHED = Gauge(
    "lokaly_worker_gauges_refreshed_timestamp_seconds",
    "When the stream and outbox gauges were last read (unix time).",
)


def event_handled(event_type: str, seconds: float, *, ok: bool) -> None:
    HANDLER_SECONDS.labels(event_type).observe(seconds)
    (EVENTS_PROCESSED if ok else EVENTS_FAILED).labels(event_type).inc()


def event_retried(event_type: str) -> None:
    RETRIES.labels(event_type or "unknown").inc()


def event_dead_lettered(event_type: str) -> None:
    DEAD_LETTERED.labels(event_type or "unknown").inc()


def refresh_gauges() -> None:
    health = pipeline_health()
    STREAM_LENGTH.set(health.stream_length)
    for group in health.groups:
        STREAM_LAG.labels(group.name).set(-1 if group.lag is None else group.lag)
        PENDING.labels(group.name).set(group.pending)
        OLDEST_PENDING_AGE.labels(group.name).set(group.oldest_pending_age_s or 0)
    DEAD_LETTERS.set(health.dead_letters)
    OUTBOX_UNPUBLISHED.set(health.outbox_unpublished)
    OUTBOX_OLDEST_AGE.set(health.outbox_oldest_unpublished_age_s or 0)
    DISPATCH_WAITING.set(health.dispatch_waiting)
    DISPATCH_OLDEST_WAIT.set(health.dispatch_oldest_wait_s or 0)
    NOTIFICATIONS_PENDING.set(health.notifications_pending)
    NOTIFICATIONS_FAILED.set(health.notifications_failed)
    GAUGES_REFRESHED.set_to_current_time()


@dataclass
class MetricsServer:
    port: int
    server: WSGIServer
    stopping: threading.Event

    def stop(self) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()


def start(port: int | None = None) -> MetricsServer | None:
    """Serve ``/metrics`` on ``port`` (default ``WORKER_METRICS_PORT``, 9100; 0 disables)
    and start the gauge refresher. A port already taken (a second worker on the host left
    at the default) is logged and the worker runs on without metrics: metrics must never
    keep events from being processed."""
    port = env_int("WORKER_METRICS_PORT", DEFAULT_PORT) if port is None else port
    if port == 0:
        return None
    try:
        server, _thread = start_http_server(port, addr=_bind_address())
    except OSError as exc:
        logger.error(
            "worker metrics disabled: cannot listen on the port; give each worker on this "
            "host its own WORKER_METRICS_PORT",
            extra={"port": port, "error": str(exc)},
        )
        return None
    stopping = threading.Event()
    interval = env_int("WORKER_METRICS_REFRESH_SECONDS", 5)
    threading.Thread(
        target=_refresh_loop, args=(stopping, interval), name="metrics-gauges", daemon=True
    ).start()
    logger.info("worker metrics served", extra={"port": port, "path": "/metrics"})
    return MetricsServer(port, server, stopping)


def _bind_address() -> str:
    # As the servers: HOST (0.0.0.0 in the containers), else loopback only.
    return env("WORKER_METRICS_HOST", env("HOST", "127.0.0.1"))


def _refresh_loop(stopping: threading.Event, interval: int) -> None:
    while not stopping.is_set():
        try:
            refresh_gauges()
        except Exception:
            logger.warning("could not refresh the worker's gauges; will try again", exc_info=True)
        finally:
            close_old_connections()
        stopping.wait(max(interval, 1))
