"""Dispatch in the worker, on the real database and stream: confirmed orders get couriers,
freed couriers take the queue, and racing workers never give two orders one courier."""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.db.models import Count
from django.utils import timezone

from lokaly_core.delivery.models import CourierState, DispatchTask
from lokaly_core.delivery.models import Delivery as DeliveryRow
from lokaly_core.domain.delivery import (
    delivery_complete,
    delivery_decline,
    delivery_pickup,
    dispatch_order,
)
from lokaly_core.domain.model import orders as o
from lokaly_core.domain.model.delivery import ACTIVE_DELIVERY
from lokaly_core.domain.picking import order_advance_to
from lokaly_core.domain.services import (
    ItemRequest,
    PlaceOrder,
    order_cancel,
    order_reserve_stock,
    place_order,
)
from lokaly_core.events import Envelope, PickingStarted
from lokaly_core.notifications.models import Notification
from lokaly_core.orders.models import Order
from lokaly_core.orders.uow import DjangoUnitOfWork
from lokaly_core.outbox.models import OutboxEvent
from lokaly_worker.consumer import StreamWorker
from lokaly_worker.dispatch import dispatch_policy
from lokaly_worker.registry import Registry
from tests.conftest import wait_until
from tests.factories import courier_on_shift
from tests.worker.conftest import make_worker, run_until

pytestmark = pytest.mark.django_db(transaction=True)

ADDRESS = o.Address("Keizersgracht 1", "Amsterdam", "1015", 52.37, 4.89)
ACTIVE = [s.value for s in ACTIVE_DELIVERY]


@pytest.fixture
def no_retry_by_timer(settings) -> None:
    """Queued orders wait 10 minutes before a timed retry: within a test, only an event
    (order confirmed, courier available) can dispatch them."""
    settings.DISPATCH_RETRY_BASE_MS = 600_000
    settings.DISPATCH_RETRY_MAX_MS = 600_000


def _place(customer: Any, stock: Any, *, confirm: bool) -> uuid.UUID:
    order = place_order(
        uow=DjangoUnitOfWork(),
        clock=timezone.now,
        delivery_fee_cents=199,
        command=PlaceOrder(
            customer.id, stock.store_id, [ItemRequest(stock.product_id, 1)], ADDRESS
        ),
    )
    if confirm:
        order_reserve_stock(uow=DjangoUnitOfWork(), clock=timezone.now, order_id=order.id)
    return order.id


def _active(order_id: uuid.UUID) -> DeliveryRow | None:
    return DeliveryRow.objects.filter(order_id=order_id, status__in=ACTIVE).first()


def _deliver(delivery: DeliveryRow) -> None:
    """Staff pick the order, the courier picks it up and hands it over."""
    clock = timezone.now
    order_advance_to(
        uow=DjangoUnitOfWork(), clock=clock, order_id=delivery.order_id, target=o.OrderStatus.READY
    )
    for action in (delivery_pickup, delivery_complete):
        action(
            uow=DjangoUnitOfWork(),
            clock=clock,
            delivery_id=delivery.id,
            courier_id=delivery.courier_id,
        )


def _couriers_with_two_active() -> list[dict[str, Any]]:
    return list(
        DeliveryRow.objects.filter(status__in=ACTIVE)
        .values("courier_id")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
    )


# -- the confirmed road -------------------------------------------------------------------


def test_confirmed_order_gets_the_nearest_courier_through_the_worker(
    customer, stocked, worker, caplog
) -> None:
    # given a near and a far courier on shift
    stock = stocked(on_hand=10)
    far = courier_on_shift(lat=52.40, lng=4.95)
    near = courier_on_shift(lat=52.3701, lng=4.8901)

    # when an order is placed and the worker runs
    order_id = _place(customer, stock, confirm=False)
    with caplog.at_level(logging.INFO, logger="lokaly.worker.dispatch"):
        delivery = run_until(worker, lambda: _active(order_id))

    # then the near courier has it; the far one is still free; one log line says so
    assert delivery.courier_id == near.id
    assert CourierState.objects.get(pk=near.id).current_delivery_id == delivery.id
    assert CourierState.objects.get(pk=far.id).current_delivery_id is None
    [line] = [r for r in caplog.records if r.getMessage() == "delivery assigned"]
    assert (line.order_id, line.delivery_id, line.courier_id) == (
        str(order_id),
        str(delivery.id),
        str(near.id),
    )
    assert line.via == "order.status_changed" and uuid.UUID(line.event_id)
    assert not DispatchTask.objects.exists()


def test_confirmed_order_with_nobody_free_waits_in_the_queue(customer, stocked, worker) -> None:
    stock = stocked(on_hand=10)
    order_id = _place(customer, stock, confirm=False)

    task = run_until(worker, lambda: DispatchTask.objects.filter(pk=order_id).first())

    assert task.attempts == 1
    assert task.next_attempt_at > timezone.now()
    assert not DeliveryRow.objects.exists()


def test_due_orders_are_dispatched_by_the_periodic_retry(customer, stocked, settings) -> None:
    # given an order that found nobody, with a short backoff
    settings.DISPATCH_RETRY_BASE_MS = 100
    settings.DISPATCH_RETRY_MAX_MS = 200
    stock = stocked(on_hand=10)
    order_id = _place(customer, stock, confirm=True)
    dispatch_order(
        uow=DjangoUnitOfWork(), clock=timezone.now, order_id=order_id, policy=dispatch_policy()
    )
    assert DispatchTask.objects.filter(pk=order_id).exists()
    # and a courier who came online without any event reaching the worker
    courier = courier_on_shift()
    wait_until(lambda: not OutboxEvent.objects.filter(published_at__isnull=True).exists())
    worker = make_worker()
    worker.redis.delete(settings.EVENT_STREAM)

    # when the worker runs with nothing on the stream
    deadline = time.monotonic() + 10
    while _active(order_id) is None and time.monotonic() < deadline:
        worker.tick()

    # then the retry assigned the order
    active = _active(order_id)
    assert active is not None
    assert active.courier_id == courier.id
    assert not DispatchTask.objects.exists()


def test_a_failing_periodic_task_is_logged_and_the_loop_goes_on(redis_client, caplog) -> None:
    # given a periodic task that always fails, and an event to process
    reg = Registry()
    ticks: list[float] = []
    handled: list[uuid.UUID] = []

    @reg.every_tick
    def flaky_task() -> None:
        ticks.append(time.monotonic())
        raise RuntimeError("database is gone")

    @reg.handles(PickingStarted)
    def record(envelope: Any, event: Any) -> None:
        handled.append(envelope.event_id)

    event = PickingStarted(order_id=uuid.uuid4(), store_id=uuid.uuid4())
    envelope = Envelope.wrap(event, aggregate_id=event.order_id, occurred_at=timezone.now())
    redis_client.xadd(
        settings.EVENT_STREAM,
        {"event_id": str(envelope.event_id), "type": envelope.type, "envelope": envelope.to_json()},
    )

    # when the worker runs
    with caplog.at_level(logging.ERROR, logger="lokaly.worker"):
        run_until(make_worker(reg), lambda: handled and len(ticks) >= 3)

    # then the task was tried at every turn, each failure logged, and the event processed
    assert handled == [envelope.event_id]
    failures = [
        r for r in caplog.records if r.getMessage() == "periodic task failed; will try again"
    ]
    assert len(failures) == len(ticks)
    assert failures[0].task == "flaky_task"


# -- decline and cancellation, through the worker ----------------------------------------


def test_declined_order_goes_to_another_free_courier(customer, stocked, worker) -> None:
    # given an order the near courier has
    stock = stocked(on_hand=10)
    near = courier_on_shift(lat=52.3701, lng=4.8901)
    far = courier_on_shift(lat=52.39, lng=4.93)  # 3.5 km: in DISPATCH_RADIUS_M (v1.1)
    order_id = _place(customer, stock, confirm=False)
    first = run_until(worker, lambda: _active(order_id))
    assert first.courier_id == near.id

    # when the near courier declines
    delivery_decline(
        uow=DjangoUnitOfWork(), clock=timezone.now, delivery_id=first.id, courier_id=near.id
    )

    # then the worker gives it to the far courier, not back to the decliner
    second = run_until(worker, lambda: _active(order_id))
    assert second.courier_id == far.id
    first.refresh_from_db()
    assert first.status == "declined"
    assert CourierState.objects.get(pk=near.id).current_delivery_id is None
    assert not DispatchTask.objects.exists()


def test_declined_order_returns_to_the_decliner_when_nobody_else_is_free(
    customer, stocked, worker
) -> None:
    stock = stocked(on_hand=10)
    only = courier_on_shift()
    order_id = _place(customer, stock, confirm=False)
    first = run_until(worker, lambda: _active(order_id))

    delivery_decline(
        uow=DjangoUnitOfWork(), clock=timezone.now, delivery_id=first.id, courier_id=only.id
    )

    second = run_until(worker, lambda: _active(order_id))
    assert second.courier_id == only.id and second.id != first.id
    assert sorted(DeliveryRow.objects.values_list("status", flat=True)) == ["assigned", "declined"]


def test_cancelling_an_assigned_order_frees_its_courier_for_the_next_order(
    customer, stocked, worker, no_retry_by_timer
) -> None:
    # given one courier busy with the first order, and a second order waiting
    stock = stocked(on_hand=10)
    courier = courier_on_shift()
    first = _place(customer, stock, confirm=False)
    run_until(worker, lambda: _active(first))
    second = _place(customer, stock, confirm=False)
    run_until(worker, lambda: DispatchTask.objects.filter(pk=second).exists())

    # when the customer cancels the first order
    order_cancel(
        uow=DjangoUnitOfWork(),
        clock=timezone.now,
        order_id=first,
        actor=o.Actor.CUSTOMER,
        reason="changed my mind",
        customer_id=customer.id,
    )

    # then its delivery is cancelled and the courier takes the waiting order
    delivery = run_until(worker, lambda: _active(second))
    assert delivery.courier_id == courier.id
    assert list(DeliveryRow.objects.filter(order_id=first).values_list("status", flat=True)) == [
        "cancelled"
    ]
    assert CourierState.objects.get(pk=courier.id).current_delivery_id == delivery.id
    assert not DispatchTask.objects.exists()
    # and the courier was told not to collect the cancelled one
    notice = run_until(
        worker,
        lambda: Notification.objects.filter(user=courier, type="delivery.cancelled").first(),
    )
    assert notice.order_id == first
    assert Notification.objects.filter(user=courier, type="delivery.cancelled").count() == 1


# -- racing workers ----------------------------------------------------------------------


@pytest.fixture
def worker_threads() -> Iterator[list[StreamWorker]]:
    """Stream workers each running in a thread of its own (own database connection);
    started by the test, stopped and joined here."""
    workers: list[StreamWorker] = []
    threads: list[threading.Thread] = []

    def serve(worker: StreamWorker) -> None:
        try:
            worker.run()
        finally:
            connection.close()

    def start(count: int) -> list[StreamWorker]:
        for i in range(count):
            worker = make_worker(consumer=f"racer-{i}")
            worker.ensure_group()
            workers.append(worker)
            threads.append(threading.Thread(target=serve, args=(worker,), daemon=True))
            threads[-1].start()
        return workers

    yield start  # type: ignore[misc]
    for worker in workers:
        worker.stop()
    for thread in threads:
        thread.join(timeout=15)


def test_racing_dispatchers_never_give_two_orders_one_courier(
    customer, stocked, redis_client, worker_threads, no_retry_by_timer
) -> None:
    # given 20 confirmed orders and 5 couriers on shift around the store
    stock = stocked(on_hand=100)
    couriers = {courier_on_shift(lat=52.37 + 0.002 * i, lng=4.89 - 0.001 * i).id for i in range(5)}
    order_ids = [_place(customer, stock, confirm=True) for _ in range(20)]

    # when 8 threads, each with its own connection, dispatch every order at once
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def dispatch_all(seed: int) -> None:
        mine = random.Random(seed).sample(order_ids, len(order_ids))
        try:
            barrier.wait()
            for order_id in mine:
                dispatch_order(
                    uow=DjangoUnitOfWork(),
                    clock=timezone.now,
                    order_id=order_id,
                    policy=dispatch_policy(),
                )
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=dispatch_all, args=(seed,)) for seed in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    # then exactly 5 deliveries are active, one per courier, and 15 orders wait
    assert errors == []
    active = list(
        DeliveryRow.objects.filter(status__in=ACTIVE).values_list("courier_id", "order_id")
    )
    assert len(active) == 5
    assert {courier for courier, _ in active} == couriers
    assert len({order for _, order in active}) == 5
    queued = set(DispatchTask.objects.values_list("order_id", flat=True))
    assert len(queued) == 15
    assert queued | {order for _, order in active} == set(order_ids)
    assert DeliveryRow.objects.count() == 5

    # given the stream holds only what happens from now on
    wait_until(lambda: not OutboxEvent.objects.filter(published_at__isnull=True).exists())
    redis_client.delete(settings.EVENT_STREAM)

    # when three workers race on courier.available while couriers deliver, one by one
    worker_threads(3)
    deadline = time.monotonic() + 90
    while DeliveryRow.objects.filter(status="delivered").count() < 20:
        assert time.monotonic() < deadline, "not every order was delivered in time"
        assert _couriers_with_two_active() == []
        assigned = list(DeliveryRow.objects.filter(status="assigned"))
        for delivery in assigned:
            _deliver(delivery)
        if not assigned:
            time.sleep(0.02)

    # then all 20 were delivered, each by one delivery, none declined or doubled
    assert DeliveryRow.objects.count() == 20
    assert set(DeliveryRow.objects.values_list("order_id", flat=True)) == set(order_ids)
    assert not DispatchTask.objects.exists()
    assert set(Order.objects.filter(pk__in=order_ids).values_list("status", flat=True)) == {
        "delivered"
    }
    # and no courier ever held two deliveries at once: their intervals never overlap
    for courier_id in couriers:
        spans = list(
            DeliveryRow.objects.filter(courier_id=courier_id)
            .order_by("assigned_at")
            .values_list("assigned_at", "delivered_at")
        )
        for (_, done), (next_start, _) in zip(spans, spans[1:], strict=False):
            assert done is not None
            assert done <= next_start
    assert {s.current_delivery_id for s in CourierState.objects.filter(pk__in=couriers)} == {None}
