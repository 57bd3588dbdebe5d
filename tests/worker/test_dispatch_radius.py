"""v1.1 dispatch radius, drop-outs and decline cooldown through the worker, on the real
database and stream."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest
from django.db import connection, transaction
from django.utils import timezone

from lokaly_core.accounts.models import User
from lokaly_core.accounts.services import courier_set_active
from lokaly_core.catalog.models import Store
from lokaly_core.delivery.models import CourierState, DispatchTask
from lokaly_core.delivery.models import Delivery as DeliveryRow
from lokaly_core.delivery.repositories import OrmCouriers, OrmDeliveries
from lokaly_core.domain.delivery import (
    courier_set_shift,
    delivery_decline,
    delivery_pickup,
)
from lokaly_core.domain.model import orders as o
from lokaly_core.domain.model.delivery import ACTIVE_DELIVERY, Delivery, DeliveryStatus
from lokaly_core.domain.picking import order_advance_to
from lokaly_core.domain.services import (
    ItemRequest,
    PlaceOrder,
    order_reserve_stock,
    place_order,
)
from lokaly_core.events import DeliveryDeclined
from lokaly_core.orders.uow import DjangoUnitOfWork
from lokaly_core.outbox.models import OutboxEvent
from lokaly_worker.registry import Registry, registry
from tests.conftest import wait_until
from tests.factories import StockFactory, StoreFactory, courier_on_shift
from tests.worker.conftest import make_worker, run_until

pytestmark = pytest.mark.django_db(transaction=True)

AMSTERDAM = (52.37, 4.89)  # StoreFactory's location
BEIJING = (39.9042, 116.4074)  # 7,800 km away
ADDRESS = o.Address("Keizersgracht 1", "Amsterdam", "1015", 52.37, 4.89)
ACTIVE = [s.value for s in ACTIVE_DELIVERY]


@pytest.fixture(autouse=True)
def no_retry_by_timer(settings) -> None:
    """Queued orders wait 10 minutes before a timed retry: within a test, only an event
    dispatches them."""
    settings.DISPATCH_RETRY_BASE_MS = 600_000
    settings.DISPATCH_RETRY_MAX_MS = 600_000


def _place(customer: Any, stock: Any) -> uuid.UUID:
    order = place_order(
        uow=DjangoUnitOfWork(),
        clock=timezone.now,
        delivery_fee_cents=199,
        command=PlaceOrder(
            customer.id, stock.store_id, [ItemRequest(stock.product_id, 1)], ADDRESS
        ),
    )
    return order.id


def _active(order_id: uuid.UUID) -> DeliveryRow | None:
    return DeliveryRow.objects.filter(order_id=order_id, status__in=ACTIVE).first()


def _declines(order_id: uuid.UUID) -> list[tuple[str, str]]:
    return [
        (p["courier_id"], p["reason"])
        for p in OutboxEvent.objects.filter(aggregate_id=order_id, type="delivery.declined")
        .order_by("created_at")
        .values_list("payload", flat=True)
    ]


# -- the radius ------------------------------------------------------------------------------


def test_a_courier_in_another_city_stays_idle_and_a_near_one_gets_the_order(
    customer, stocked, worker
) -> None:
    # given the only courier on shift is in Beijing
    stock = stocked(on_hand=10)
    far = courier_on_shift(lat=BEIJING[0], lng=BEIJING[1])

    # when an order is placed in Amsterdam
    order_id = _place(customer, stock)
    task = run_until(worker, lambda: DispatchTask.objects.filter(pk=order_id).first())

    # then it waits in the queue; the far courier stays free
    assert task.attempts == 1 and task.next_attempt_at > timezone.now()
    assert not DeliveryRow.objects.exists()
    assert CourierState.objects.get(pk=far.id).current_delivery_id is None

    # and when a courier 4 km from the store comes online, they get it
    near = courier_on_shift(lat=AMSTERDAM[0] + 0.036, lng=AMSTERDAM[1])
    delivery = run_until(worker, lambda: _active(order_id))
    assert delivery.courier_id == near.id
    assert not DispatchTask.objects.exists()


def test_a_courier_with_no_location_is_not_dispatched_to(customer, stocked, worker) -> None:
    stock = stocked(on_hand=10)
    courier = courier_on_shift()
    CourierState.objects.filter(pk=courier.id).update(lat=None, lng=None, location_at=None)

    order_id = _place(customer, stock)
    run_until(worker, lambda: DispatchTask.objects.filter(pk=order_id).exists())

    assert not DeliveryRow.objects.exists()


def test_an_order_nobody_is_near_does_not_hold_up_the_queue(customer, stocked, worker) -> None:
    # given an order waiting at a store in Beijing, then one waiting in Amsterdam
    beijing = StoreFactory.create(lat=BEIJING[0], lng=BEIJING[1])
    far_order = _place(customer, StockFactory.create(store=beijing, on_hand=10))
    run_until(worker, lambda: DispatchTask.objects.filter(pk=far_order).exists())
    near_order = _place(customer, stocked(on_hand=10))
    run_until(worker, lambda: DispatchTask.objects.filter(pk=near_order).exists())

    # when a courier comes online in Amsterdam
    courier = courier_on_shift()

    # then the Amsterdam order, second in the queue, is theirs; Beijing's keeps waiting
    delivery = run_until(worker, lambda: _active(near_order))
    assert delivery.courier_id == courier.id
    assert list(DispatchTask.objects.values_list("order_id", flat=True)) == [far_order]
    assert Store.objects.count() == 2


# -- drop-outs -------------------------------------------------------------------------------


def _assigned_with_a_second_courier_free(customer, stocked, worker):
    stock = stocked(on_hand=10)
    first = courier_on_shift(lat=52.3701, lng=4.8901)
    order_id = _place(customer, stock)
    delivery = run_until(worker, lambda: _active(order_id))
    assert delivery.courier_id == first.id
    second = courier_on_shift(lat=52.38, lng=4.90)
    return order_id, delivery, first, second


def test_going_offline_releases_the_delivery_to_another_courier(customer, stocked, worker) -> None:
    # given the first courier has an assigned delivery, a second one is free
    order_id, delivery, first, second = _assigned_with_a_second_courier_free(
        customer, stocked, worker
    )

    # when the first ends their shift
    courier_set_shift(
        uow=DjangoUnitOfWork(),
        clock=timezone.now,
        courier_id=first.id,
        online=False,
        release_assigned=True,
    )

    # then the worker gives the order to the second at once
    again = run_until(worker, lambda: _active(order_id))
    assert again.courier_id == second.id
    delivery.refresh_from_db()
    assert delivery.status == "declined" and delivery.ended_at is not None
    assert _declines(order_id) == [(str(first.id), "courier_offline")]
    state = CourierState.objects.get(pk=first.id)
    assert (state.is_online, state.current_delivery_id) == (False, None)
    assert not DispatchTask.objects.exists()


def test_deactivation_releases_the_delivery_to_another_courier(customer, stocked, worker) -> None:
    order_id, delivery, first, second = _assigned_with_a_second_courier_free(
        customer, stocked, worker
    )

    courier_set_active(courier_id=first.id, is_active=False)

    again = run_until(worker, lambda: _active(order_id))
    assert again.courier_id == second.id
    assert _declines(order_id) == [(str(first.id), "courier_deactivated")]
    assert CourierState.objects.get(pk=first.id).current_delivery_id is None


def test_the_drop_out_event_alone_dispatches_the_order(customer, stocked, worker) -> None:
    # given a worker with only the handlers of delivery.declined (no timed retry)
    order_id, delivery, first, second = _assigned_with_a_second_courier_free(
        customer, stocked, worker
    )
    only_declines = Registry()
    for handler in registry.for_type(DeliveryDeclined.TYPE):
        only_declines.handles(DeliveryDeclined, when=handler.when)(handler.fn)
    # (the first worker read the stream so far; this one reads what follows)
    declines_worker = make_worker(only_declines, consumer="declines-only")

    # when the first courier is deactivated
    courier_set_active(courier_id=first.id, is_active=False)

    # then that event's handling gives the order to the second
    again = run_until(declines_worker, lambda: _active(order_id))
    assert again.courier_id == second.id


def test_a_delivery_picked_up_stays_with_a_deactivated_courier(customer, stocked, worker) -> None:
    # given the first courier has picked the order up
    order_id, delivery, first, _second = _assigned_with_a_second_courier_free(
        customer, stocked, worker
    )
    order_advance_to(
        uow=DjangoUnitOfWork(), clock=timezone.now, order_id=order_id, target=o.OrderStatus.READY
    )
    delivery_pickup(
        uow=DjangoUnitOfWork(), clock=timezone.now, delivery_id=delivery.id, courier_id=first.id
    )

    # when they go offline and are deactivated
    courier_set_shift(
        uow=DjangoUnitOfWork(),
        clock=timezone.now,
        courier_id=first.id,
        online=False,
        release_assigned=True,
    )
    courier_set_active(courier_id=first.id, is_active=False)

    # then they keep it
    delivery.refresh_from_db()
    assert delivery.status == "picked_up"
    assert CourierState.objects.get(pk=first.id).current_delivery_id == delivery.id
    assert _declines(order_id) == []
    assert not DispatchTask.objects.exists()


# -- the decline cooldown --------------------------------------------------------------------


def test_after_the_cooldown_the_decliner_is_offered_the_order_again_first(
    customer, stocked, worker, settings
) -> None:
    # given no cooldown: a decline counts for 0 seconds
    settings.DECLINE_COOLDOWN_SECONDS = 0
    stock = stocked(on_hand=10)
    near = courier_on_shift(lat=52.3701, lng=4.8901)
    courier_on_shift(lat=52.39, lng=4.93)
    order_id = _place(customer, stock)
    first = run_until(worker, lambda: _active(order_id))
    assert first.courier_id == near.id

    # when the near courier declines
    delivery_decline(
        uow=DjangoUnitOfWork(), clock=timezone.now, delivery_id=first.id, courier_id=near.id
    )

    # then the near one, as the nearest, is offered it again
    second = run_until(worker, lambda: _active(order_id))
    assert second.courier_id == near.id and second.id != first.id


# -- deactivation racing a dispatch ----------------------------------------------------------


def _backend_waits_on_a_lock(pid: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [pid])
        row = cursor.fetchone()
    return row is not None and row[0] == "Lock"


def test_a_deactivation_waits_for_a_claim_in_flight_then_releases_its_delivery(
    customer, stocked
) -> None:
    # given a dispatch that has claimed the courier and not committed yet
    courier = courier_on_shift()
    order_id = _place(customer, stocked(on_hand=10))
    order_reserve_stock(uow=DjangoUnitOfWork(), clock=timezone.now, order_id=order_id)
    claimed, go_on = threading.Event(), threading.Event()
    pids: dict[str, int] = {}

    def dispatch_in_flight() -> None:
        try:
            with transaction.atomic():
                assert OrmCouriers().try_claim(courier.id)
                claimed.set()
                go_on.wait(timeout=30)
                delivery = Delivery(
                    uuid.uuid4(), order_id, courier.id, DeliveryStatus.ASSIGNED, timezone.now()
                )
                OrmDeliveries().add(delivery)
                OrmCouriers().set_current_delivery(courier.id, delivery.id, at=timezone.now())
        finally:
            connection.close()

    def deactivate() -> None:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                pids["deactivation"] = cursor.fetchone()[0]
            courier_set_active(courier_id=courier.id, is_active=False)
        finally:
            connection.close()

    dispatcher = threading.Thread(target=dispatch_in_flight)
    dispatcher.start()
    assert claimed.wait(timeout=30)

    # when staff deactivate the courier meanwhile
    deactivation = threading.Thread(target=deactivate)
    deactivation.start()
    try:
        wait_until(
            lambda: "deactivation" in pids and _backend_waits_on_a_lock(pids["deactivation"])
        )
    finally:
        go_on.set()
        dispatcher.join(timeout=30)
        deactivation.join(timeout=30)

    # then the deactivation, after the claim committed, released the new delivery
    [row] = DeliveryRow.objects.filter(order_id=order_id)
    assert row.status == "declined"
    assert _declines(order_id) == [(str(courier.id), "courier_deactivated")]
    assert CourierState.objects.get(pk=courier.id).current_delivery_id is None
    assert DispatchTask.objects.filter(pk=order_id).exists()


def test_a_courier_being_deactivated_is_not_claimed(customer) -> None:
    # given a deactivation in flight (it holds the account row)
    courier = courier_on_shift()
    locked, done = threading.Event(), threading.Event()

    def hold_the_account() -> None:
        try:
            with transaction.atomic():
                User.objects.select_for_update().get(pk=courier.id)
                locked.set()
                done.wait(timeout=30)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_the_account)
    holder.start()
    assert locked.wait(timeout=30)

    # when a dispatch tries to claim the courier, it skips them without waiting
    try:
        with transaction.atomic():
            assert OrmCouriers().try_claim(courier.id) is False
    finally:
        done.set()
        holder.join(timeout=30)
    with transaction.atomic():
        assert OrmCouriers().try_claim(courier.id) is True
