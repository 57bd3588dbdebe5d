"""Delivery: ranking, dispatch, pickup, drop-off, decline and release, on in-memory ports."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from lokaly_core.domain.delivery import (
    DispatchOutcome,
    DispatchPolicy,
    courier_set_shift,
    delivery_complete,
    delivery_decline,
    delivery_pickup,
    dispatch_order,
    rank_candidates,
)
from lokaly_core.domain.errors import ErrorCode, InvalidTransition, NotFound
from lokaly_core.domain.model import orders as o
from lokaly_core.domain.model.delivery import Candidate, DeliveryStatus
from lokaly_core.domain.picking import order_advance_to
from lokaly_core.domain.services import order_cancel, order_reserve_stock
from tests.domain.conftest import CUSTOMER, MILK, STORE, place
from tests.domain.fakes import FakeClock, FakeUnitOfWork

STORE_AT = (52.37, 4.89)
POLICY = DispatchPolicy(retry_base_ms=2_000, retry_max_ms=60_000)
T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
NEAR = uuid.UUID(int=1)
FAR = uuid.UUID(int=2)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def _candidate(
    courier_id: uuid.UUID,
    at: tuple[float, float] | None,
    *,
    since: datetime = T0,
    declined: bool = False,
) -> Candidate:
    lat, lng = at if at else (None, None)
    return Candidate(courier_id, lat, lng, since, declined)


def _confirmed(uow: FakeUnitOfWork, clock: FakeClock, quantity: int = 2) -> o.Order:
    order = place(uow, (MILK, quantity))
    order_reserve_stock(uow=uow, clock=clock, order_id=order.id)
    assert uow.orders.rows[order.id].status is o.OrderStatus.CONFIRMED
    return order


def _dispatch(uow: FakeUnitOfWork, clock: FakeClock, order: o.Order):
    return dispatch_order(uow=uow, clock=clock, order_id=order.id, policy=POLICY)


def _assigned(uow: FakeUnitOfWork, clock: FakeClock, courier: uuid.UUID = NEAR):
    """A confirmed order assigned to ``courier`` (the only one on shift)."""
    uow.couriers.put(courier, lat=52.371, lng=4.891)
    order = _confirmed(uow, clock)
    result = _dispatch(uow, clock, order)
    assert result.outcome is DispatchOutcome.ASSIGNED
    return order, result.delivery


def _ready(uow: FakeUnitOfWork, clock: FakeClock, order: o.Order) -> None:
    order_advance_to(uow=uow, clock=clock, order_id=order.id, target=o.OrderStatus.READY)


# -- ranking ----------------------------------------------------------------------------


def test_nearest_courier_ranks_first() -> None:
    far = _candidate(FAR, (52.40, 4.95), since=T0 - timedelta(hours=1))
    near = _candidate(NEAR, (52.371, 4.891))

    assert [c.courier_id for c in rank_candidates(*STORE_AT, [far, near])] == [NEAR, FAR]


def test_equally_near_couriers_rank_by_who_waited_longest() -> None:
    newer = _candidate(NEAR, (52.38, 4.90), since=T0)
    older = _candidate(FAR, (52.38, 4.90), since=T0 - timedelta(minutes=5))

    assert [c.courier_id for c in rank_candidates(*STORE_AT, [newer, older])] == [FAR, NEAR]


def test_courier_who_declined_the_order_ranks_last_even_when_nearest() -> None:
    decliner = _candidate(NEAR, STORE_AT, declined=True)
    unlocated = _candidate(FAR, None)
    distant = _candidate(uuid.UUID(int=3), (53.2, 6.5))

    ranked = rank_candidates(*STORE_AT, [decliner, unlocated, distant])

    assert [c.courier_id for c in ranked] == [uuid.UUID(int=3), FAR, NEAR]


def test_courier_without_a_location_ranks_after_every_located_one() -> None:
    unlocated = _candidate(NEAR, None, since=T0 - timedelta(hours=3))
    across_the_country = _candidate(FAR, (50.85, 5.69))

    assert [c.courier_id for c in rank_candidates(*STORE_AT, [unlocated, across_the_country])] == [
        FAR,
        NEAR,
    ]


# -- dispatch ---------------------------------------------------------------------------


def test_dispatch_assigns_the_nearest_free_courier(uow, clock) -> None:
    # given two free couriers and a busy nearer one
    uow.couriers.put(FAR, lat=52.40, lng=4.95)
    uow.couriers.put(NEAR, lat=52.371, lng=4.891)
    busy = uuid.UUID(int=9)
    uow.couriers.put(busy, lat=52.37, lng=4.89)
    uow.couriers.state[busy]["current"] = uuid.uuid4()
    order = _confirmed(uow, clock)
    uow.published.clear()

    # when the order is dispatched
    result = _dispatch(uow, clock, order)

    # then the nearest free courier has it, and delivery.assigned says so
    assert result.outcome is DispatchOutcome.ASSIGNED
    delivery = result.delivery
    assert (delivery.courier_id, delivery.order_id, delivery.status) == (
        NEAR,
        order.id,
        DeliveryStatus.ASSIGNED,
    )
    assert uow.couriers.state[NEAR]["current"] == delivery.id
    assert uow.couriers.state[FAR]["current"] is None
    assert uow.dispatch.rows == {}
    [event] = uow.published
    assert event.type == "delivery.assigned"
    assert event.payload == {
        "delivery_id": str(delivery.id),
        "order_id": str(order.id),
        "courier_id": str(NEAR),
        "customer_id": str(CUSTOMER),
        "store_id": str(STORE),
    }


def test_dispatch_skips_a_courier_another_transaction_is_claiming(uow, clock) -> None:
    uow.couriers.put(NEAR, lat=52.371, lng=4.891)
    uow.couriers.put(FAR, lat=52.39, lng=4.93)  # 3.5 km: in DISPATCH_RADIUS_M (v1.1)
    uow.couriers.locked_elsewhere.add(NEAR)
    order = _confirmed(uow, clock)

    result = _dispatch(uow, clock, order)

    assert result.delivery.courier_id == FAR


def test_no_free_courier_queues_the_order_with_growing_bounded_backoff(uow, clock) -> None:
    # given a confirmed order and nobody on shift
    order = _confirmed(uow, clock)
    delays = []

    # when dispatch is tried eight times
    for attempt in range(1, 9):
        before = clock.now
        result = _dispatch(uow, clock, order)
        assert result.outcome is DispatchOutcome.WAITING and result.delivery is None
        attempts, next_at = uow.dispatch.rows[order.id]
        assert attempts == attempt
        now = before + timedelta(seconds=1)  # the clock ticked once inside dispatch
        delays.append((next_at - now).total_seconds())

    # then each wait lies in 50-100 % of min(2 s * 2^(n-1), 60 s), and no event was sent
    for n, delay in enumerate(delays, start=1):
        ceiling = min(2 * 2 ** (n - 1), 60)
        assert ceiling / 2 <= delay <= ceiling, (n, delay)
    assert delays[3] > delays[0]
    assert max(delays) <= 60
    assert uow.deliveries.rows == {}
    assert "delivery.assigned" not in uow.types()


def test_dispatch_twice_assigns_once(uow, clock) -> None:
    order, delivery = _assigned(uow, clock)
    uow.couriers.put(FAR, lat=52.371, lng=4.891)
    events = len(uow.published)

    again = _dispatch(uow, clock, order)

    assert again.outcome is DispatchOutcome.NOT_NEEDED
    assert list(uow.deliveries.rows) == [delivery.id]
    assert uow.couriers.state[FAR]["current"] is None
    assert len(uow.published) == events


def test_dispatch_of_an_order_not_confirmed_yet_is_not_needed(uow, clock) -> None:
    uow.couriers.put(NEAR, lat=52.371, lng=4.891)
    pending = place(uow, (MILK, 1))

    result = _dispatch(uow, clock, pending)

    assert result.outcome is DispatchOutcome.NOT_NEEDED
    assert uow.deliveries.rows == {}
    assert uow.couriers.state[NEAR]["current"] is None


def test_dispatch_of_a_cancelled_queued_order_drops_it_from_the_queue(uow, clock) -> None:
    order = _confirmed(uow, clock)
    _dispatch(uow, clock, order)
    uow.orders.rows[order.id].status = o.OrderStatus.CANCELLED  # cancelled by an old build
    uow.couriers.put(NEAR, lat=52.371, lng=4.891)

    result = _dispatch(uow, clock, order)

    assert result.outcome is DispatchOutcome.NOT_NEEDED
    assert uow.dispatch.rows == {}
    assert uow.deliveries.rows == {}


# -- pickup -----------------------------------------------------------------------------


def test_pickup_before_the_order_is_ready_is_refused_and_changes_nothing(uow, clock) -> None:
    # given an assigned delivery of a confirmed (not yet ready) order holding 2 units
    order, delivery = _assigned(uow, clock)
    events = len(uow.published)

    # when the courier tries to pick it up
    with pytest.raises(InvalidTransition) as caught:
        delivery_pickup(uow=uow, clock=clock, delivery_id=delivery.id, courier_id=NEAR)

    # then 409 and nothing moved
    assert caught.value.code is ErrorCode.INVALID_TRANSITION
    assert caught.value.details == {"delivery_status": "assigned", "order_status": "confirmed"}
    assert uow.stock.rows[(STORE, MILK)] == {"on_hand": 5, "reserved": 2}
    assert uow.deliveries.rows[delivery.id].status is DeliveryStatus.ASSIGNED
    assert uow.orders.rows[order.id].status is o.OrderStatus.CONFIRMED
    assert len(uow.published) == events


def test_pickup_of_a_ready_order_consumes_its_reservation(uow, clock) -> None:
    order, delivery = _assigned(uow, clock)
    _ready(uow, clock, order)
    uow.published.clear()

    picked = delivery_pickup(uow=uow, clock=clock, delivery_id=delivery.id, courier_id=NEAR)

    assert picked.status is DeliveryStatus.PICKED_UP and picked.picked_up_at == clock.now
    assert uow.stock.rows[(STORE, MILK)] == {"on_hand": 3, "reserved": 0}
    stored = uow.orders.rows[order.id]
    assert (stored.status, stored.stock_state) == (
        o.OrderStatus.OUT_FOR_DELIVERY,
        o.StockState.CONSUMED,
    )
    assert uow.types() == ["delivery.picked_up", "order.status_changed"]
    assert uow.published[1].payload["status"] == "out_for_delivery"
    assert uow.couriers.state[NEAR]["current"] == delivery.id


def test_pickup_twice_is_refused(uow, clock) -> None:
    order, delivery = _assigned(uow, clock)
    _ready(uow, clock, order)
    delivery_pickup(uow=uow, clock=clock, delivery_id=delivery.id, courier_id=NEAR)

    with pytest.raises(InvalidTransition):
        delivery_pickup(uow=uow, clock=clock, delivery_id=delivery.id, courier_id=NEAR)

    assert uow.stock.rows[(STORE, MILK)] == {"on_hand": 3, "reserved": 0}


# -- complete ---------------------------------------------------------------------------


def test_complete_delivers_the_order_and_frees_the_courier(uow, clock) -> None:
    order, delivery = _assigned(uow, clock)
    _ready(uow, clock, order)
    delivery_pickup(uow=uow, clock=clock, delivery_id=delivery.id, courier_id=NEAR)
    uow.published.clear()

    done = delivery_complete(uow=uow, clock=clock, delivery_id=delivery.id, courier_id=NEAR)

    assert done.status is DeliveryStatus.DELIVERED and done.delivered_at == clock.now
    assert uow.orders.rows[order.id].status is o.OrderStatus.DELIVERED
    assert uow.couriers.state[NEAR]["current"] is None
    assert uow.couriers.state[NEAR]["since"] == clock.now
    assert uow.types() == ["delivery.completed", "order.status_changed", "courier.available"]
    assert uow.published[2].payload == {
        "courier_id": str(NEAR),
        "reason": "delivered",
        "order_id": str(order.id),
    }


def test_complete_before_pickup_is_refused(uow, clock) -> None:
    order, delivery = _assigned(uow, clock)
    _ready(uow, clock, order)
    events = len(uow.published)

    with pytest.raises(InvalidTransition) as caught:
        delivery_complete(uow=uow, clock=clock, delivery_id=delivery.id, courier_id=NEAR)

    assert caught.value.details == {"delivery_status": "assigned", "order_status": "ready"}
    assert uow.orders.rows[order.id].status is o.OrderStatus.READY
    assert uow.couriers.state[NEAR]["current"] == delivery.id
    assert len(uow.published) == events


# -- decline ----------------------------------------------------------------------------


def test_decline_frees_the_courier_and_queues_the_order_due_now(uow, clock) -> None:
    order, delivery = _assigned(uow, clock)
    uow.published.clear()

    declined = delivery_decline(uow=uow, clock=clock, delivery_id=delivery.id, courier_id=NEAR)

    assert declined.status is DeliveryStatus.DECLINED and declined.ended_at == clock.now
    assert uow.couriers.state[NEAR]["current"] is None
    assert uow.dispatch.rows == {order.id: (0, clock.now)}
    assert uow.types() == ["delivery.declined", "courier.available"]
    assert uow.published[1].payload == {
        "courier_id": str(NEAR),
        "reason": "declined",
        "order_id": str(order.id),
    }
    assert uow.orders.rows[order.id].status is o.OrderStatus.CONFIRMED


def test_declined_order_goes_to_another_free_courier_first(uow, clock) -> None:
    # given NEAR declined, and FAR (farther away) is free too
    order, delivery = _assigned(uow, clock)
    uow.couriers.put(FAR, lat=52.39, lng=4.93)  # 3.5 km: in DISPATCH_RADIUS_M (v1.1)
    delivery_decline(uow=uow, clock=clock, delivery_id=delivery.id, courier_id=NEAR)

    result = _dispatch(uow, clock, order)

    assert result.delivery.courier_id == FAR
    assert uow.dispatch.rows == {}


def test_declined_order_goes_back_to_the_decliner_when_nobody_else_is_free(uow, clock) -> None:
    order, delivery = _assigned(uow, clock)
    delivery_decline(uow=uow, clock=clock, delivery_id=delivery.id, courier_id=NEAR)

    result = _dispatch(uow, clock, order)

    assert result.delivery.courier_id == NEAR
    assert result.delivery.id != delivery.id
    statuses = sorted(str(d.status) for d in uow.deliveries.rows.values())
    assert statuses == ["assigned", "declined"]


def test_decline_after_pickup_is_refused(uow, clock) -> None:
    order, delivery = _assigned(uow, clock)
    _ready(uow, clock, order)
    delivery_pickup(uow=uow, clock=clock, delivery_id=delivery.id, courier_id=NEAR)

    with pytest.raises(InvalidTransition):
        delivery_decline(uow=uow, clock=clock, delivery_id=delivery.id, courier_id=NEAR)

    assert uow.deliveries.rows[delivery.id].status is DeliveryStatus.PICKED_UP
    assert uow.couriers.state[NEAR]["current"] == delivery.id
    assert uow.dispatch.rows == {}


@pytest.mark.parametrize("action", [delivery_pickup, delivery_complete, delivery_decline])
def test_another_couriers_delivery_is_not_found(uow, clock, action) -> None:
    order, delivery = _assigned(uow, clock)
    _ready(uow, clock, order)
    events = len(uow.published)

    with pytest.raises(NotFound):
        action(uow=uow, clock=clock, delivery_id=delivery.id, courier_id=FAR)
    with pytest.raises(NotFound):
        action(uow=uow, clock=clock, delivery_id=uuid.uuid4(), courier_id=NEAR)

    assert uow.deliveries.rows[delivery.id].status is DeliveryStatus.ASSIGNED
    assert len(uow.published) == events


# -- cancellation -----------------------------------------------------------------------


def test_cancelling_an_assigned_order_releases_its_courier(uow, clock) -> None:
    order, delivery = _assigned(uow, clock)
    uow.published.clear()

    order_cancel(
        uow=uow, clock=clock, order_id=order.id, actor=o.Actor.CUSTOMER, reason="changed my mind"
    )

    assert uow.deliveries.rows[delivery.id].status is DeliveryStatus.CANCELLED
    assert uow.deliveries.rows[delivery.id].ended_at == clock.now
    assert uow.couriers.state[NEAR]["current"] is None
    assert "courier.available" in uow.types()
    [available] = [e for e in uow.published if e.type == "courier.available"]
    assert available.payload == {
        "courier_id": str(NEAR),
        "reason": "released",
        "order_id": str(order.id),
    }
    assert uow.stock.rows[(STORE, MILK)] == {"on_hand": 5, "reserved": 0}


def test_cancelling_a_queued_order_takes_it_off_the_queue(uow, clock) -> None:
    order = _confirmed(uow, clock)
    _dispatch(uow, clock, order)
    assert order.id in uow.dispatch.rows

    order_cancel(uow=uow, clock=clock, order_id=order.id, actor=o.Actor.ADMIN, reason="closed")

    assert uow.dispatch.rows == {}
    assert "courier.available" not in uow.types()


# -- shifts -----------------------------------------------------------------------------


def test_going_online_announces_the_courier_once(uow, clock) -> None:
    courier_set_shift(uow=uow, clock=clock, courier_id=NEAR, online=True)
    courier_set_shift(uow=uow, clock=clock, courier_id=NEAR, online=True)
    courier_set_shift(uow=uow, clock=clock, courier_id=NEAR, online=False)

    assert uow.types() == ["courier.available"]
    assert uow.published[0].payload == {
        "courier_id": str(NEAR),
        "reason": "online",
        "order_id": None,
    }
    assert uow.couriers.state[NEAR]["online"] is False


def test_busy_courier_coming_back_online_is_not_announced(uow, clock) -> None:
    order, delivery = _assigned(uow, clock)
    courier_set_shift(uow=uow, clock=clock, courier_id=NEAR, online=False)
    uow.published.clear()

    courier_set_shift(uow=uow, clock=clock, courier_id=NEAR, online=True)

    assert uow.types() == []
    assert uow.couriers.state[NEAR]["current"] == delivery.id
