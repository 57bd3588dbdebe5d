"""v1.1 "Couriers: dispatch radius and drop-outs", on in-memory ports: only couriers within
the radius are dispatched to, a courier who drops out before pickup loses the delivery, and
a decliner waits out the cooldown while anybody else in range is free."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from lokaly_core.domain.delivery import (
    DispatchOutcome,
    DispatchPolicy,
    courier_drop_out,
    courier_set_shift,
    delivery_decline,
    delivery_pickup,
    dispatch_order,
)
from lokaly_core.domain.geo import distance_m
from lokaly_core.domain.model import orders as o
from lokaly_core.domain.model.delivery import DeclineReason, DeliveryStatus
from lokaly_core.domain.picking import order_advance_to
from lokaly_core.domain.services import order_reserve_stock
from tests.domain.conftest import MILK, STORE, place
from tests.domain.fakes import FakeClock, FakeUnitOfWork

STORE_AT = (52.37, 4.89)  # the fakes' store location (Amsterdam)
BEIJING = (39.9042, 116.4074)  # next to another store, 7,800 km away
POLICY = DispatchPolicy(radius_m=5_000, decline_cooldown_s=600)
A, B, C = uuid.UUID(int=11), uuid.UUID(int=12), uuid.UUID(int=13)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def _north(metres: float) -> tuple[float, float]:
    """A point ``metres`` due north of the store (1 degree of latitude: 111,195 m)."""
    return STORE_AT[0] + metres / 111_195.08, STORE_AT[1]


def _confirmed(uow: FakeUnitOfWork, clock: FakeClock) -> o.Order:
    order = place(uow, (MILK, 1))
    order_reserve_stock(uow=uow, clock=clock, order_id=order.id)
    return order


def _dispatch(uow: FakeUnitOfWork, clock: FakeClock, order: o.Order, policy=POLICY):
    return dispatch_order(uow=uow, clock=clock, order_id=order.id, policy=policy)


def _put(uow: FakeUnitOfWork, courier: uuid.UUID, at: tuple[float, float] | None) -> None:
    lat, lng = at if at else (None, None)
    uow.couriers.put(courier, lat=lat, lng=lng)


def _assigned_to(uow: FakeUnitOfWork, clock: FakeClock, courier: uuid.UUID):
    """A confirmed order assigned to ``courier``, the only one on shift (next to the store)."""
    _put(uow, courier, _north(100))
    order = _confirmed(uow, clock)
    result = _dispatch(uow, clock, order)
    assert result.delivery.courier_id == courier
    return order, result.delivery


def test_the_distance_is_great_circle_in_metres() -> None:
    assert distance_m(*STORE_AT, *STORE_AT) == 0
    assert distance_m(*STORE_AT, *_north(4_900)) == pytest.approx(4_900, abs=1)
    assert distance_m(*STORE_AT, *BEIJING) == pytest.approx(7_822_650, rel=1e-3)
    assert distance_m(0, 179.99, 0, -179.99) == pytest.approx(2_224, abs=1)


# -- the radius ------------------------------------------------------------------------------


def test_a_courier_in_another_city_is_not_handed_the_order(uow, clock) -> None:
    # given the only free courier is next to a store 7,800 km away
    _put(uow, A, BEIJING)
    order = _confirmed(uow, clock)
    uow.published.clear()

    # when the order is dispatched
    result = _dispatch(uow, clock, order)

    # then it waits in the queue with backoff; the courier stays free; nothing announced
    assert result.outcome is DispatchOutcome.OUT_OF_RANGE and result.delivery is None
    attempts, next_at = uow.dispatch.rows[order.id]
    assert attempts == 1 and next_at > clock.now
    assert uow.couriers.state[A]["current"] is None
    assert uow.deliveries.rows == {}
    assert uow.published == []


def test_a_courier_within_the_radius_is_handed_the_order(uow, clock) -> None:
    _put(uow, A, BEIJING)
    _put(uow, B, _north(4_900))
    order = _confirmed(uow, clock)

    result = _dispatch(uow, clock, order)

    assert result.outcome is DispatchOutcome.ASSIGNED
    assert result.delivery.courier_id == B
    assert uow.dispatch.rows == {}


def test_a_courier_just_outside_the_radius_is_not(uow, clock) -> None:
    _put(uow, A, _north(5_100))
    order = _confirmed(uow, clock)

    assert _dispatch(uow, clock, order).outcome is DispatchOutcome.OUT_OF_RANGE
    assert _dispatch(uow, clock, order, DispatchPolicy(radius_m=6_000)).delivery.courier_id == A


def test_a_courier_with_no_known_location_is_not_considered(uow, clock) -> None:
    _put(uow, A, None)
    order = _confirmed(uow, clock)

    result = _dispatch(uow, clock, order)

    assert result.outcome is DispatchOutcome.OUT_OF_RANGE
    assert uow.deliveries.rows == {}
    assert uow.dispatch.rows[order.id][0] == 1


def test_with_nobody_free_the_outcome_stays_waiting(uow, clock) -> None:
    order = _confirmed(uow, clock)

    assert _dispatch(uow, clock, order).outcome is DispatchOutcome.WAITING


# -- drop-outs -------------------------------------------------------------------------------


def test_going_offline_with_an_assigned_delivery_releases_it(uow, clock) -> None:
    # given A holds an assigned delivery, B is free nearby
    order, delivery = _assigned_to(uow, clock, A)
    _put(uow, B, _north(2_000))
    uow.published.clear()

    # when A ends the shift (as the courier API does)
    courier_set_shift(uow=uow, clock=clock, courier_id=A, online=False, release_assigned=True)

    # then the delivery is declined for courier_offline and the order queued due now
    released = uow.deliveries.rows[delivery.id]
    assert (released.status, released.ended_at) == (DeliveryStatus.DECLINED, clock.now)
    assert (uow.couriers.state[A]["online"], uow.couriers.state[A]["current"]) == (False, None)
    assert uow.dispatch.rows == {order.id: (0, clock.now)}
    assert uow.types() == ["delivery.declined"]  # A is not available: offline
    assert uow.published[0].payload == {
        "delivery_id": str(delivery.id),
        "order_id": str(order.id),
        "courier_id": str(A),
        "reason": "courier_offline",
    }
    # and dispatching it again gives it to B
    again = _dispatch(uow, clock, order)
    assert again.delivery.courier_id == B


def test_deactivation_with_an_assigned_delivery_releases_it(uow, clock) -> None:
    order, delivery = _assigned_to(uow, clock, A)
    uow.published.clear()

    released = courier_drop_out(
        uow=uow, clock=clock, courier_id=A, reason=DeclineReason.COURIER_DEACTIVATED
    )

    assert released is not None and released.id == delivery.id
    assert uow.deliveries.rows[delivery.id].status is DeliveryStatus.DECLINED
    assert uow.couriers.state[A]["current"] is None
    assert uow.dispatch.rows == {order.id: (0, clock.now)}
    assert [(e.type, e.payload["reason"]) for e in uow.published] == [
        ("delivery.declined", "courier_deactivated")
    ]


@pytest.mark.parametrize("how", ["offline", "deactivated"])
def test_a_delivery_already_picked_up_is_not_released(uow, clock, how) -> None:
    # given A picked the order up
    order, delivery = _assigned_to(uow, clock, A)
    order_advance_to(uow=uow, clock=clock, order_id=order.id, target=o.OrderStatus.READY)
    delivery_pickup(uow=uow, clock=clock, delivery_id=delivery.id, courier_id=A)
    uow.published.clear()

    # when A goes offline or is deactivated
    if how == "offline":
        courier_set_shift(uow=uow, clock=clock, courier_id=A, online=False, release_assigned=True)
    else:
        assert (
            courier_drop_out(
                uow=uow, clock=clock, courier_id=A, reason=DeclineReason.COURIER_DEACTIVATED
            )
            is None
        )

    # then A keeps the bag
    assert uow.deliveries.rows[delivery.id].status is DeliveryStatus.PICKED_UP
    assert uow.couriers.state[A]["current"] == delivery.id
    assert uow.orders.rows[order.id].status is o.OrderStatus.OUT_FOR_DELIVERY
    assert uow.dispatch.rows == {}
    assert uow.published == []


def test_a_drop_out_after_the_order_was_cancelled_queues_nothing(uow, clock) -> None:
    order, delivery = _assigned_to(uow, clock, A)
    uow.orders.rows[order.id].status = o.OrderStatus.CANCELLED  # as an old build left it

    courier_drop_out(uow=uow, clock=clock, courier_id=A, reason=DeclineReason.COURIER_DEACTIVATED)

    assert uow.deliveries.rows[delivery.id].status is DeliveryStatus.DECLINED
    assert uow.dispatch.rows == {}


# -- the decline cooldown --------------------------------------------------------------------


def _declined_by(uow: FakeUnitOfWork, clock: FakeClock, courier: uuid.UUID) -> o.Order:
    order, delivery = _assigned_to(uow, clock, courier)
    delivery_decline(uow=uow, clock=clock, delivery_id=delivery.id, courier_id=courier)
    return order


def test_the_decliner_is_skipped_while_another_courier_in_range_is_free(uow, clock) -> None:
    # given A (next to the store) declined, B is free 4 km away
    order = _declined_by(uow, clock, A)
    _put(uow, B, _north(4_000))
    clock.now += timedelta(seconds=590)

    # when the order is dispatched within the cooldown
    result = _dispatch(uow, clock, order)

    # then B has it
    assert result.delivery.courier_id == B


def test_the_decliner_is_offered_it_again_when_nobody_else_in_range_is_free(uow, clock) -> None:
    # given A declined, and the only other free courier is in another city
    order = _declined_by(uow, clock, A)
    _put(uow, B, BEIJING)

    result = _dispatch(uow, clock, order)

    assert result.delivery.courier_id == A


def test_after_the_cooldown_the_decliner_ranks_as_anybody(uow, clock) -> None:
    # given A (nearest) declined 600 s ago, and B is free farther away
    order = _declined_by(uow, clock, A)
    _put(uow, B, _north(4_000))
    clock.now += timedelta(seconds=599)  # dispatch reads the clock once more (+1 s)

    # when the order is dispatched after the cooldown
    result = _dispatch(uow, clock, order)

    # then the nearest, A, has it again
    assert result.delivery.courier_id == A


def test_the_cooldown_is_the_policys(uow, clock) -> None:
    order = _declined_by(uow, clock, A)
    _put(uow, B, _north(4_000))
    clock.now += timedelta(seconds=30)

    short = DispatchPolicy(radius_m=5_000, decline_cooldown_s=30)

    assert _dispatch(uow, clock, order, short).delivery.courier_id == A


def test_a_drop_out_counts_as_a_decline_for_the_cooldown(uow, clock) -> None:
    # given A was deactivated out of the order, reactivated and is free again
    order, _delivery = _assigned_to(uow, clock, A)
    courier_drop_out(uow=uow, clock=clock, courier_id=A, reason=DeclineReason.COURIER_DEACTIVATED)
    _put(uow, B, _north(4_000))

    assert _dispatch(uow, clock, order).delivery.courier_id == B


def test_store_elsewhere_uses_its_own_location(uow, clock) -> None:
    # given the order's store is in Beijing, with one courier there and one in Amsterdam
    uow.deliveries.store_locations[STORE] = BEIJING
    _put(uow, A, STORE_AT)
    _put(uow, B, (BEIJING[0] + 0.01, BEIJING[1]))
    order = _confirmed(uow, clock)

    assert _dispatch(uow, clock, order).delivery.courier_id == B
