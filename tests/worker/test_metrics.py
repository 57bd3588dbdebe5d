"""The worker's Prometheus metrics (docs/reliability.md, promise 9), scraped from a real
worker process.

The worker runs on a stream of its own with a metrics port; this test publishes to that
stream (orders placed through the API in-process, a poison entry, an event whose order
does not exist), leaves one entry pending on a silent consumer and one outbox row
unpublished, then scrapes ``/metrics`` and checks every figure against what it did.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import cast

import httpx
import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families
from redis.typing import EncodableT, FieldT

from lokaly_core.orders.models import Order
from lokaly_core.outbox.models import OutboxEvent
from lokaly_core.redis_client import get_redis
from tests.conftest import order_body, wait_until
from tests.live import (
    delete_namespace_keys,
    free_port,
    live_environment,
    session_namespace,
    spawn,
    stop,
)

pytestmark = pytest.mark.django_db(transaction=True)

GROUP = "lokaly-worker"


def _scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def _failing_order_created() -> dict[FieldT, EncodableT]:
    """An ``order.created`` entry for an order that is not in the database: its handler
    raises on every attempt."""
    row = OutboxEvent.objects.filter(type="order.created").first()
    assert row is not None
    order_id, event_id = str(uuid.uuid4()), str(uuid.uuid4())
    envelope = {
        "event_id": event_id,
        "type": row.type,
        "schema_version": row.schema_version,
        "occurred_at": row.occurred_at.isoformat().replace("+00:00", "Z"),
        "aggregate_id": order_id,
        "payload": {**row.payload, "order_id": order_id},
    }
    return {"event_id": event_id, "type": row.type, "envelope": json.dumps(envelope)}


def test_metrics_count_events_failures_retries_and_report_the_backlog(
    settings, customer_client, stocked
) -> None:
    # given a worker on a stream of its own, with metrics on a free port
    namespace = session_namespace("lokaly-metrics")
    delete_namespace_keys(namespace)
    stream, dead = f"{namespace}:events", f"{namespace}:events:dead"
    settings.EVENT_STREAM, settings.DEAD_LETTER_STREAM = stream, dead
    redis = get_redis()
    # an entry read by a consumer that never acks it: pending, not claimed (claim idle 60 s)
    redis.xgroup_create(stream, GROUP, id="0", mkstream=True)
    ghost_id = cast(bytes, redis.xadd(stream, {"type": "ghost.entry", "envelope": "{}"})).decode()
    redis.xreadgroup(GROUP, "ghost", {stream: ">"}, count=1)
    # an outbox row nobody publishes (the sweep only takes rows older than 10 minutes)
    stale = OutboxEvent.objects.create(
        event_id=uuid.uuid4(),
        type="order.created",
        schema_version=1,
        occurred_at=timezone.now(),
        aggregate_id=uuid.uuid4(),
        payload={},
    )
    OutboxEvent.objects.filter(pk=stale.pk).update(
        created_at=timezone.now() - timedelta(seconds=120)
    )
    port = free_port()
    logs: dict[str, Path] = {}
    env = {
        **live_environment(namespace),
        "DJANGO_SETTINGS_MODULE": "lokaly_admin.settings.test",
        "WORKER_METRICS_PORT": str(port),
        "WORKER_METRICS_REFRESH_SECONDS": "1",
        "EVENT_MAX_ATTEMPTS": "2",
        "EVENT_RETRY_BASE_MS": "200",
        "EVENT_RETRY_MAX_MS": "400",
        "EVENT_CLAIM_IDLE_MS": "60000",
        "OUTBOX_SWEEP_AFTER_MS": "600000",
    }
    worker = spawn("metrics-worker", ["manage_admin.py", "run_worker", "--no-migrate"], env, logs)
    try:
        wait_until(lambda: _try_scrape(port), timeout=30, interval=0.1)

        # when three orders are placed, a poison entry and a failing event are published
        stock = stocked(on_hand=10)
        for _ in range(3):
            response = customer_client.post(
                "/api/orders", order_body(stock.store_id, (stock.product_id, 1)), format="json"
            )
            assert response.status_code == 201, response.content
        redis.xadd(stream, {"event_id": str(uuid.uuid4()), "type": "bogus", "envelope": "{"})
        redis.xadd(stream, _failing_order_created())
        wait_until(lambda: Order.objects.filter(status="confirmed").count() == 3, timeout=20)
        wait_until(lambda: redis.xlen(dead) == 2, timeout=20)

        # then the counters and the histogram say exactly that
        def settled() -> dict | None:
            s = _scrape(port)
            quiet = (
                _value(s, "lokaly_events_stream_lag", group=GROUP) == 0
                and _value(s, "lokaly_events_dead_letters") == 2
                # the events the orders caused are published too: only the stale row is left
                and _value(s, "lokaly_outbox_unpublished") == 1
            )
            return s if quiet else None

        samples = wait_until(settled, timeout=10, interval=0.2)
        created = {"type": "order.created"}
        assert _value(samples, "lokaly_worker_events_processed_total", **created) == 3
        reserved = {"type": "inventory.reserved"}
        assert _value(samples, "lokaly_worker_events_processed_total", **reserved) == 3
        assert _value(samples, "lokaly_worker_events_failed_total", **created) == 2
        assert _value(samples, "lokaly_worker_retries_total", **created) == 1
        assert _value(samples, "lokaly_worker_dead_lettered_total", **created) == 1
        assert _value(samples, "lokaly_worker_dead_lettered_total", type="bogus") == 1
        assert _value(samples, "lokaly_worker_handler_seconds_count", **created) == 5
        assert _value(samples, "lokaly_worker_handler_seconds_bucket", le="+Inf", **created) == 5
        # and the gauges describe the stream and the outbox as they are
        assert _value(samples, "lokaly_events_stream_length") == redis.xlen(stream)
        assert _value(samples, "lokaly_events_pending", group=GROUP) == 1  # the ghost's
        age = _value(samples, "lokaly_events_oldest_pending_age_seconds", group=GROUP)
        ghost_age = time.time() - int(ghost_id.split("-")[0]) / 1000
        assert 0 < age <= ghost_age
        assert OutboxEvent.objects.filter(published_at__isnull=True).get() == stale
        assert 120 <= _value(samples, "lokaly_outbox_oldest_unpublished_age_seconds") < 180
    finally:
        stop(worker)
        delete_namespace_keys(namespace)
    assert worker.returncode == 0, logs["metrics-worker"].read_text()[-3000:]


def _try_scrape(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_events_stats_prints_the_ages_of_the_oldest_pending_entry_and_outbox_row(
    settings, redis_client
) -> None:
    # given one entry pending on a consumer for a while and an outbox row unpublished 90 s
    from io import StringIO

    from django.core.management import call_command

    stream = settings.EVENT_STREAM
    redis_client.xgroup_create(stream, GROUP, id="0", mkstream=True)
    old_ms = int(time.time() * 1000) - 42_000
    redis_client.xadd(stream, {"type": "x", "envelope": "{}"}, id=f"{old_ms}-0")
    redis_client.xreadgroup(GROUP, "ghost", {stream: ">"}, count=1)
    row = OutboxEvent.objects.create(
        event_id=uuid.uuid4(),
        type="order.created",
        schema_version=1,
        occurred_at=timezone.now(),
        aggregate_id=uuid.uuid4(),
        payload={},
    )
    OutboxEvent.objects.filter(pk=row.pk).update(created_at=timezone.now() - timedelta(seconds=90))

    # when the operator asks for the stats
    out = StringIO()
    call_command("events", "stats", stdout=out)

    # then the ages are there, next to the counts
    lines = out.getvalue().splitlines()
    assert f"  group {GROUP}: pending 1, lag 0, consumers 1" in lines
    pending_age = next(line for line in lines if line.startswith(f"oldest pending in {GROUP}: "))
    assert 42 <= float(pending_age.split(": ")[1].split(" ")[0]) < 60
    outbox_age = next(line for line in lines if line.startswith("oldest unpublished outbox row"))
    assert 90 <= float(outbox_age.split(": ")[1].split(" ")[0]) < 110
    assert "outbox unpublished: 1" in lines


def test_stats_and_gauges_show_orders_waiting_for_a_courier_and_notifications_given_up() -> None:
    # given two confirmed orders waiting for a courier (the older for 30 s), one
    # notification still to send and two given up on
    from io import StringIO

    from django.core.management import call_command

    from lokaly_core.delivery.models import DispatchTask
    from lokaly_core.notifications.models import Notification
    from lokaly_worker import metrics
    from tests.conftest import client_for
    from tests.factories import StockFactory, UserFactory

    stock = StockFactory.create(on_hand=10)
    customer = UserFactory.create()
    now = timezone.now()
    for age in (30, 5):
        order_id = (
            client_for(customer)
            .post("/api/orders", order_body(stock.store_id, (stock.product_id, 1)), format="json")
            .json()["id"]
        )
        DispatchTask.objects.create(order_id=order_id, attempts=1, next_attempt_at=now)
        DispatchTask.objects.filter(pk=order_id).update(created_at=now - timedelta(seconds=age))
    for status in ("pending", "failed", "failed", "sent"):
        Notification.objects.create(
            user=customer,
            type="order.confirmed",
            title="t",
            body="b",
            created_at=now,
            next_send_at=now,
            send_status=status,
        )

    # when the operator asks for the stats, and the worker refreshes its gauges
    out = StringIO()
    call_command("events", "stats", stdout=out)
    metrics.refresh_gauges()

    # then both show the queue and the sends
    lines = out.getvalue().splitlines()
    waiting = next(line for line in lines if line.startswith("orders waiting for a courier"))
    assert waiting.startswith("orders waiting for a courier: 2, the longest for ")
    assert 30 <= float(waiting.rsplit(" ", 2)[1]) < 60
    assert "notifications to send: 1, given up: 2" in lines
    assert metrics.DISPATCH_WAITING._value.get() == 2
    assert 30 <= metrics.DISPATCH_OLDEST_WAIT._value.get() < 60
    assert metrics.NOTIFICATIONS_PENDING._value.get() == 1
    assert metrics.NOTIFICATIONS_FAILED._value.get() == 2
