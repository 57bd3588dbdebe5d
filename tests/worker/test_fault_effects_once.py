"""Effects once: an event delivered twice, to two workers at the same moment, or again
after its ack was lost, has its effects once (the dedup marker commits with them)."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any, cast

import pytest
import redis
from django.conf import settings
from django.db import connection

from lokaly_core.events import Envelope, OrderCreated, OrderStatusChanged
from lokaly_core.inventory.models import Stock
from lokaly_core.notifications.models import Notification
from lokaly_core.orders.models import Order
from lokaly_core.outbox.models import OutboxEvent, ProcessedEvent
from lokaly_core.redis_client import get_redis
from lokaly_worker import handlers
from lokaly_worker.consumer import StreamWorker
from lokaly_worker.registry import Registry
from tests.conftest import order_body, stream_envelopes, wait_until
from tests.worker.conftest import make_worker

pytestmark = pytest.mark.django_db(transaction=True)


def _registry(*, on_created: Any) -> Registry:
    """The real reservation and notification handlers, ``on_created`` before them (not
    transactional), and a transactional ``count_effect`` that is not idempotent by itself:
    a second run would add a second row."""
    reg = Registry()
    reg.handles(OrderCreated, transactional=False)(on_created)
    reg.handles(OrderCreated)(handlers.reserve_stock)
    reg.handles(OrderCreated)(count_effect)
    reg.handles(OrderStatusChanged)(handlers.write_notifications)
    return reg


def count_effect(envelope: Envelope, event: Any) -> None:
    ProcessedEvent.objects.create(event_id=uuid.uuid4(), handler=f"effect:{envelope.event_id}")


def _envelope(event_type: str) -> Envelope:
    [envelope] = wait_until(lambda: [e for e in stream_envelopes() if e.type == event_type])
    return envelope


def _xadd_again(envelope: Envelope) -> None:
    get_redis().xadd(
        settings.EVENT_STREAM,
        {"event_id": str(envelope.event_id), "type": envelope.type, "envelope": envelope.to_json()},
    )


def _all_acked() -> bool:
    """Every entry of the stream was delivered to the group and acked."""
    client = get_redis()
    [group] = cast("list[dict[str, Any]]", client.xinfo_groups(settings.EVENT_STREAM))
    last = cast("dict[str, Any]", client.xinfo_stream(settings.EVENT_STREAM))["last-generated-id"]
    return group["pending"] == 0 and group["last-delivered-id"] == last


def _assert_effects_once(order_id: str, created: Envelope, stock: Stock) -> None:
    stock.refresh_from_db()
    assert stock.reserved == 4
    order = Order.objects.get(pk=order_id)
    assert (order.status, order.status_version) == ("confirmed", 2)
    assert order.history.count() == 2  # placed, confirmed
    events = OutboxEvent.objects.filter(aggregate_id=order_id)
    assert sorted(events.values_list("type", flat=True)) == [
        "inventory.reserved",
        "order.created",
        "order.status_changed",
    ]
    assert Notification.objects.filter(order_id=order_id).count() == 1
    assert ProcessedEvent.objects.filter(handler=f"effect:{created.event_id}").count() == 1


def test_same_event_twice_to_two_workers_at_once_has_its_effects_once(
    customer_client, stocked
) -> None:
    # given an order.created on the stream twice
    stock = stocked(on_hand=10)
    order_id = customer_client.post(
        "/api/orders", order_body(stock.store_id, (stock.product_id, 4))
    ).json()["id"]
    created = _envelope(OrderCreated.TYPE)
    _xadd_again(created)

    # when two workers, one entry each, run the handlers at the same moment
    both_in = threading.Barrier(2, timeout=10)
    met: list[str] = []

    def rendezvous(envelope: Envelope, event: Any) -> None:
        both_in.wait()  # both deliveries are in their handlers before either goes on
        met.append(threading.current_thread().name)

    reg = _registry(on_created=rendezvous)
    workers = [make_worker(reg, consumer=name, batch=1) for name in ("twin-a", "twin-b")]
    done = threading.Event()

    def run(worker: StreamWorker) -> None:
        try:
            worker.run(until=done.is_set)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(w,), name=w.config.consumer) for w in workers]
    for t in threads:
        t.start()
    try:
        # and the status change that follows arrives twice as well
        wait_until(lambda: OrderStatusChanged.TYPE in [e.type for e in stream_envelopes()])
        _xadd_again(_envelope(OrderStatusChanged.TYPE))
        wait_until(_all_acked, timeout=20)
    finally:
        done.set()
        for t in threads:
            t.join(timeout=10)

    # then both workers handled a copy concurrently, and every effect happened once
    assert sorted(met) == ["twin-a", "twin-b"]
    _assert_effects_once(order_id, created, stock)
    markers = ProcessedEvent.objects.filter(event_id=created.event_id)
    assert sorted(markers.values_list("handler", flat=True)) == [  # one per handler
        "lokaly_worker.handlers.reserve_stock",
        "tests.worker.test_fault_effects_once.count_effect",
    ]


class FlakyAcks:
    """The real Redis client, except that the first XACK fails as a dropped connection
    would (directly or in a pipeline)."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self.failed = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def fail_once(self) -> None:
        if not self.failed:
            self.failed += 1
            raise redis.ConnectionError("connection lost while acking (injected)")

    def xack(self, *args: Any, **kwargs: Any) -> Any:
        self.fail_once()
        return self._client.xack(*args, **kwargs)

    def pipeline(self, *args: Any, **kwargs: Any) -> Any:
        return _FlakyPipeline(self._client.pipeline(*args, **kwargs), self)


class _FlakyPipeline:
    def __init__(self, pipe: Any, owner: FlakyAcks) -> None:
        self._pipe = pipe
        self._owner = owner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pipe, name)

    def xack(self, *args: Any, **kwargs: Any) -> Any:
        self._owner.fail_once()
        return self._pipe.xack(*args, **kwargs)


def test_lost_ack_redelivers_the_event_and_its_effects_happen_once(
    customer_client, stocked
) -> None:
    # given an order.created on the stream, and a worker whose first ack is lost
    stock = stocked(on_hand=10)
    order_id = customer_client.post(
        "/api/orders", order_body(stock.store_id, (stock.product_id, 4))
    ).json()["id"]
    created = _envelope(OrderCreated.TYPE)
    deliveries: list[str] = []
    reg = _registry(on_created=lambda envelope, event: deliveries.append(str(envelope.event_id)))
    worker = make_worker(reg, consumer="flaky", claim_idle_ms=300)
    client = FlakyAcks(get_redis())
    worker.redis = client  # type: ignore[assignment]

    # when it runs until every entry is acked (or 20 s pass)
    deadline = time.monotonic() + 20
    worker.run(
        until=lambda: (
            (Notification.objects.filter(order_id=order_id).exists() and _all_acked())
            or time.monotonic() > deadline
        )
    )

    # then the ack did fail, the entry was claimed again and run again (a no-op)
    assert client.failed == 1
    assert _all_acked()
    assert deliveries == [str(created.event_id)] * 2
    _assert_effects_once(order_id, created, stock)
