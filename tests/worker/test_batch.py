"""The batched worker (docs/reliability.md, "Batched worker (issue 10)"): a poison event in
a batch costs its neighbours nothing, and two workers' batches racing for the last units
of a product never oversell."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any, cast

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from lokaly_core.events import Envelope, OrderCreated, PickingStarted
from lokaly_core.orders.models import Order
from lokaly_core.outbox.models import ProcessedEvent
from lokaly_core.redis_client import get_redis
from lokaly_worker import handlers
from lokaly_worker.consumer import StreamWorker
from lokaly_worker.registry import Registry
from tests.conftest import order_body, wait_until
from tests.worker.conftest import make_worker, run_until

pytestmark = pytest.mark.django_db(transaction=True)


def _publish(event: PickingStarted | OrderCreated, aggregate_id: uuid.UUID) -> Envelope:
    envelope = Envelope.wrap(event, aggregate_id=aggregate_id, occurred_at=timezone.now())
    get_redis().xadd(
        settings.EVENT_STREAM,
        {"event_id": str(envelope.event_id), "type": envelope.type, "envelope": envelope.to_json()},
    )
    return envelope


def _dead_letters() -> list[dict[str, str]]:
    return [
        {k.decode(): v.decode() for k, v in fields.items()}
        for _id, fields in cast("list[Any]", get_redis().xrange(settings.DEAD_LETTER_STREAM))
    ]


def _stream_length() -> int:
    return int(cast("int", get_redis().xlen(settings.EVENT_STREAM)))


def _pending() -> int:
    info = get_redis().xpending(settings.EVENT_STREAM, settings.EVENT_CONSUMER_GROUP)
    return int(cast("dict[str, Any]", info)["pending"])


def test_poison_event_in_a_batch_is_retried_and_dead_lettered_alone(redis_client) -> None:
    # given five events read in one batch, the third poison, and a per-event handler
    poison_order = uuid.uuid4()
    calls: list[uuid.UUID] = []
    reg = Registry()

    @reg.handles(PickingStarted)
    def effect(envelope: Envelope, event: PickingStarted) -> None:
        calls.append(event.order_id)
        ProcessedEvent.objects.create(event_id=uuid.uuid4(), handler=f"effect:{event.order_id}")
        if event.order_id == poison_order:
            raise ValueError("poison")

    orders = [uuid.uuid4(), uuid.uuid4(), poison_order, uuid.uuid4(), uuid.uuid4()]
    envelopes = [_publish(PickingStarted(order_id=o, store_id=uuid.uuid4()), o) for o in orders]
    worker = make_worker(reg, batch=10, max_attempts=3, retry_base_ms=50, retry_max_ms=100)

    # when the worker reads them once
    worker.ensure_group()
    assert worker.run_once() == 5

    # then the four neighbours committed (effect and marker once each) in that first read
    good = [o for o in orders if o != poison_order]
    for order_id in good:
        assert ProcessedEvent.objects.filter(handler=f"effect:{order_id}").count() == 1
    assert ProcessedEvent.objects.filter(handler=f"effect:{poison_order}").count() == 0
    assert _pending() == 1

    # and when it runs on, the poison alone is retried, then dead-lettered after 3 attempts
    run_until(worker, _dead_letters)
    [dead] = _dead_letters()
    assert dead["event_id"] == str(envelopes[2].event_id)
    assert (dead["attempts"], dead["error"]) == ("3", "ValueError: poison")
    assert calls.count(poison_order) == 3  # once per attempt, the batch's run included
    # the two before it ran once more (the run the poison rolled back), the two after once
    assert [calls.count(o) for o in good] == [2, 2, 1, 1]
    assert ProcessedEvent.objects.filter(handler=f"effect:{poison_order}").count() == 0
    assert not ProcessedEvent.objects.filter(event_id=envelopes[2].event_id).exists()
    assert ProcessedEvent.objects.filter(
        event_id__in=[e.event_id for e in envelopes]
    ).count() == 4
    assert _pending() == 0


def test_poison_event_of_a_set_based_handler_is_split_out(
    customer_client, stocked, redis_client
) -> None:
    # given six order.created in one batch, handled by the set-based reservation, one of
    # them for an order this database lacks (the set-based form fails as a whole)
    stock = stocked(on_hand=10)
    placed = [
        customer_client.post("/api/orders", order_body(stock.store_id, (stock.product_id, 1)))
        .json()["id"]
        for _ in range(5)
    ]
    wait_until(lambda: _stream_length() >= 5)
    ghost = uuid.uuid4()
    ghost_event = OrderCreated(
        order_id=ghost,
        number="LK-GHOST",
        customer_id=uuid.uuid4(),
        store_id=stock.store_id,
        lines=(),
        total_cents=0,
        currency="EUR",
    )
    ghost_envelope = _publish(ghost_event, ghost)
    reg = Registry()
    reg.handles(OrderCreated, batch=handlers._reserve_stock_batch)(handlers.reserve_stock)
    worker = make_worker(reg, batch=10, max_attempts=2, retry_base_ms=50, retry_max_ms=100)

    # when the worker reads the batch once
    worker.ensure_group()
    assert worker.run_once() == 6

    # then the five real orders are confirmed at once; the ghost alone is pending
    assert sorted(Order.objects.filter(pk__in=placed).values_list("status", flat=True)) == [
        "confirmed"
    ] * 5
    stock.refresh_from_db()
    assert stock.reserved == 5
    assert worker.batches.splits >= 1
    assert _pending() == 1

    # and it alone is dead-lettered after its attempts
    run_until(worker, _dead_letters)
    [dead] = _dead_letters()
    assert dead["event_id"] == str(ghost_envelope.event_id)
    assert f"order {ghost} is not in this worker's database" in dead["error"]
    assert not ProcessedEvent.objects.filter(event_id=ghost_envelope.event_id).exists()
    stock.refresh_from_db()
    assert stock.reserved == 5


def test_two_workers_racing_for_the_last_units_never_oversell(
    customer_client, stocked, redis_client
) -> None:
    # given 7 units and 30 orders of one unit each on the stream
    stock = stocked(on_hand=7)
    placed = [
        customer_client.post("/api/orders", order_body(stock.store_id, (stock.product_id, 1)))
        .json()["id"]
        for _ in range(30)
    ]
    wait_until(lambda: _stream_length() >= 30)
    reg = Registry()
    reg.handles(OrderCreated, batch=handlers._reserve_stock_batch)(handlers.reserve_stock)
    workers = [make_worker(reg, consumer=name, batch=4) for name in ("racer-a", "racer-b")]
    workers[0].ensure_group()

    def decided() -> bool:
        return not Order.objects.filter(pk__in=placed, status="pending").exists()

    done = threading.Event()

    def run(worker: StreamWorker) -> None:
        try:
            worker.run(until=done.is_set)
        finally:
            connection.close()

    # when two workers drain the stream at the same time
    threads = [threading.Thread(target=run, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    try:
        wait_until(decided, timeout=30)
        deadline = time.monotonic() + 10
        while _pending() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        done.set()
        for t in threads:
            t.join(timeout=10)

    # then exactly 7 are confirmed, 23 cancelled out of stock, each decided once
    orders = Order.objects.filter(pk__in=placed)
    statuses = sorted(orders.values_list("status", "cancel_reason"))
    assert statuses.count(("confirmed", None)) == 7
    assert statuses.count(("cancelled", "out_of_stock")) == 23
    for order in orders:
        assert order.status_version == 2
        assert order.history.count() == 2  # placed, then confirmed or cancelled, once
    stock.refresh_from_db()
    assert (stock.on_hand, stock.reserved) == (7, 7)
    # both workers took part, nothing is left pending or dead
    assert all(w.stats.by_type.get(OrderCreated.TYPE, 0) > 0 for w in workers)
    assert sum(w.stats.by_type.get(OrderCreated.TYPE, 0) for w in workers) == 30
    assert _pending() == 0
    assert _dead_letters() == []
