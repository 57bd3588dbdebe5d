"""Proof of delivery (v1.1): the hand-off code, its bounded attempts, the admin's completion."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime

import pytest

from lokaly_core.domain.delivery import (
    DispatchPolicy,
    delivery_complete,
    delivery_complete_by_admin,
    delivery_pickup,
    dispatch_order,
)
from lokaly_core.domain.errors import (
    ErrorCode,
    HandoffLocked,
    InvalidHandoffCode,
    InvalidTransition,
    ValidationFailed,
)
from lokaly_core.domain.handoff import handoff_verify, new_handoff_code
from lokaly_core.domain.model import orders as o
from lokaly_core.domain.model.delivery import MAX_HANDOFF_ATTEMPTS, Delivery, DeliveryStatus
from lokaly_core.domain.picking import order_advance_to
from lokaly_core.domain.services import order_reserve_stock
from tests.domain.conftest import MILK, STORE, place
from tests.domain.fakes import FakeClock, FakeUnitOfWork

COURIER = uuid.UUID(int=1)
STAFF = uuid.UUID(int=99)
POLICY = DispatchPolicy()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def _delivery(code: str | None, wrong: int = 0) -> Delivery:
    return Delivery(
        id=uuid.uuid4(),
        order_id=uuid.uuid4(),
        courier_id=COURIER,
        status=DeliveryStatus.PICKED_UP,
        assigned_at=datetime(2026, 12, 1, tzinfo=UTC),
        handoff_code=code,
        handoff_failed_attempts=wrong,
    )


def _out_for_delivery(uow: FakeUnitOfWork, clock: FakeClock, *, requires_code: bool):
    """An order picked up by COURIER from a store that does (or does not) require a code."""
    if requires_code:
        uow.deliveries.stores_requiring_handoff.add(STORE)
    uow.couriers.put(COURIER, lat=52.371, lng=4.891)
    order = place(uow, (MILK, 2))
    order_reserve_stock(uow=uow, clock=clock, order_id=order.id)
    delivery = dispatch_order(uow=uow, clock=clock, order_id=order.id, policy=POLICY).delivery
    assert delivery is not None
    order_advance_to(uow=uow, clock=clock, order_id=order.id, target=o.OrderStatus.READY)
    delivery_pickup(uow=uow, clock=clock, delivery_id=delivery.id, courier_id=COURIER)
    return order, uow.deliveries.rows[delivery.id]


def _complete(uow: FakeUnitOfWork, clock: FakeClock, delivery: Delivery, code: str | None):
    return delivery_complete(
        uow=uow, clock=clock, delivery_id=delivery.id, courier_id=COURIER, handoff_code=code
    )


# -- the rule ---------------------------------------------------------------------------


def test_a_new_code_is_four_decimal_digits() -> None:
    codes = {new_handoff_code() for _ in range(200)}

    assert all(re.fullmatch(r"[0-9]{4}", c) for c in codes)
    assert len(codes) > 100  # random, not a constant


def test_a_delivery_without_a_code_needs_none() -> None:
    delivery = _delivery(None)

    assert handoff_verify(delivery, None) is None
    assert handoff_verify(delivery, "0000") is None
    assert delivery.handoff_failed_attempts == 0


def test_the_right_code_passes_and_counts_nothing() -> None:
    delivery = _delivery("0427", wrong=3)

    assert handoff_verify(delivery, "0427") is None
    assert delivery.handoff_failed_attempts == 3


def test_each_wrong_code_counts_down_attempts_left_to_zero() -> None:
    delivery = _delivery("0427")

    lefts = []
    for _ in range(MAX_HANDOFF_ATTEMPTS):
        refusal = handoff_verify(delivery, "9999")
        assert isinstance(refusal, InvalidHandoffCode)
        lefts.append(refusal.details["attempts_left"])

    assert lefts == [4, 3, 2, 1, 0]
    assert delivery.handoff_failed_attempts == 5 and delivery.handoff_locked


def test_a_locked_delivery_refuses_the_right_code_too_and_counts_no_more() -> None:
    delivery = _delivery("0427", wrong=MAX_HANDOFF_ATTEMPTS)

    refusal = handoff_verify(delivery, "0427")

    assert isinstance(refusal, HandoffLocked)
    assert refusal.code is ErrorCode.HANDOFF_LOCKED
    assert refusal.details == {"attempts_left": 0}
    assert delivery.handoff_failed_attempts == MAX_HANDOFF_ATTEMPTS


@pytest.mark.parametrize("given", [None, ""])
def test_a_missing_code_is_refused_without_costing_an_attempt(given: str | None) -> None:
    delivery = _delivery("0427", wrong=1)

    refusal = handoff_verify(delivery, given)

    assert isinstance(refusal, InvalidHandoffCode)
    assert refusal.details == {"attempts_left": 4}
    assert delivery.handoff_failed_attempts == 1


def test_a_non_ascii_code_is_just_wrong() -> None:
    delivery = _delivery("0427")

    refusal = handoff_verify(delivery, "٠٤٢٧")  # Arabic-Indic digits

    assert isinstance(refusal, InvalidHandoffCode)
    assert delivery.handoff_failed_attempts == 1


# -- pickup and complete ----------------------------------------------------------------


def test_pickup_at_a_store_requiring_a_code_gives_the_delivery_one(uow, clock) -> None:
    _, delivery = _out_for_delivery(uow, clock, requires_code=True)

    assert delivery.handoff_code is not None and re.fullmatch(r"[0-9]{4}", delivery.handoff_code)
    assert delivery.handoff_failed_attempts == 0


def test_pickup_at_a_v1_store_gives_no_code_and_complete_needs_none(uow, clock) -> None:
    order, delivery = _out_for_delivery(uow, clock, requires_code=False)
    uow.published.clear()

    done = _complete(uow, clock, delivery, None)

    assert delivery.handoff_code is None
    assert done.status is DeliveryStatus.DELIVERED
    assert uow.types() == ["delivery.completed", "order.status_changed", "courier.available"]


def test_a_wrong_code_is_committed_although_the_call_fails(uow, clock) -> None:
    order, delivery = _out_for_delivery(uow, clock, requires_code=True)
    commits, events = uow.commits, len(uow.published)

    with pytest.raises(InvalidHandoffCode) as caught:
        _complete(uow, clock, delivery, "x" if delivery.handoff_code != "x" else "y")

    assert caught.value.details == {"attempts_left": 4}
    assert uow.commits == commits + 1  # the attempt is stored, not rolled back
    assert uow.deliveries.rows[delivery.id].handoff_failed_attempts == 1
    assert uow.deliveries.rows[delivery.id].status is DeliveryStatus.PICKED_UP
    assert uow.orders.rows[order.id].status is o.OrderStatus.OUT_FOR_DELIVERY
    assert len(uow.published) == events  # no event for a refused code


def test_five_wrong_codes_lock_the_delivery_then_the_right_code_is_refused(uow, clock) -> None:
    order, delivery = _out_for_delivery(uow, clock, requires_code=True)
    wrong = "0000" if delivery.handoff_code != "0000" else "1111"

    lefts = []
    for _ in range(5):
        with pytest.raises(InvalidHandoffCode) as caught:
            _complete(uow, clock, delivery, wrong)
        lefts.append(caught.value.details["attempts_left"])
    with pytest.raises(HandoffLocked):
        _complete(uow, clock, delivery, delivery.handoff_code)

    assert lefts == [4, 3, 2, 1, 0]
    assert uow.deliveries.rows[delivery.id].handoff_failed_attempts == 5
    assert uow.orders.rows[order.id].status is o.OrderStatus.OUT_FOR_DELIVERY


def test_the_right_code_delivers_with_the_v1_events(uow, clock) -> None:
    order, delivery = _out_for_delivery(uow, clock, requires_code=True)
    uow.published.clear()

    done = _complete(uow, clock, delivery, delivery.handoff_code)

    assert done.status is DeliveryStatus.DELIVERED
    assert uow.orders.rows[order.id].status is o.OrderStatus.DELIVERED
    assert uow.types() == ["delivery.completed", "order.status_changed", "courier.available"]
    assert uow.couriers.state[COURIER]["current"] is None


# -- the admin's completion -------------------------------------------------------------


def test_admin_completes_a_locked_delivery_with_a_reason_in_the_history(uow, clock) -> None:
    # given a delivery locked after five wrong codes
    order, delivery = _out_for_delivery(uow, clock, requires_code=True)
    for _ in range(5):
        with pytest.raises(InvalidHandoffCode):
            _complete(uow, clock, delivery, "abcd")
    uow.published.clear()

    # when an admin completes it
    done = delivery_complete_by_admin(
        uow=uow, clock=clock, order_id=order.id, staff_id=STAFF, reason=" checked ID "
    )

    # then the order is delivered, audited with the admin and the reason
    assert done.status is o.OrderStatus.DELIVERED
    last = uow.orders.history[order.id][-1]
    assert (last.status, last.reason, last.actor_id) == (
        o.OrderStatus.DELIVERED,
        "checked ID",
        STAFF,
    )
    assert uow.deliveries.rows[delivery.id].status is DeliveryStatus.DELIVERED
    assert uow.couriers.state[COURIER]["current"] is None
    assert uow.types() == [
        "delivery.completed_by_admin",
        "delivery.completed",
        "order.status_changed",
        "courier.available",
    ]
    assert uow.published[0].payload == {
        "delivery_id": str(delivery.id),
        "order_id": str(order.id),
        "courier_id": str(COURIER),
        "staff_id": str(STAFF),
        "reason": "checked ID",
        "handoff_locked": True,
        "handoff_failed_attempts": 5,
    }
    assert uow.published[2].payload["reason"] == "checked ID"


def test_admin_cannot_complete_an_order_not_out_for_delivery(uow, clock) -> None:
    order = place(uow, (MILK, 1))

    with pytest.raises(InvalidTransition) as caught:
        delivery_complete_by_admin(
            uow=uow, clock=clock, order_id=order.id, staff_id=STAFF, reason="r"
        )

    assert caught.value.details == {"status": "pending", "requested": "delivered"}
    assert uow.types() == ["order.created"]


def test_admin_completion_needs_a_reason(uow, clock) -> None:
    order, _ = _out_for_delivery(uow, clock, requires_code=True)

    with pytest.raises(ValidationFailed) as caught:
        delivery_complete_by_admin(
            uow=uow, clock=clock, order_id=order.id, staff_id=STAFF, reason="  "
        )

    assert list(caught.value.details) == ["reason"]
    assert uow.orders.rows[order.id].status is o.OrderStatus.OUT_FOR_DELIVERY
