"""Picking and stock adjustments against in-memory ports."""

from __future__ import annotations

import uuid

import pytest

from lokaly_core.domain.errors import (
    InsufficientStock,
    InvalidTransition,
    NotFound,
    ValidationFailed,
)
from lokaly_core.domain.inventory import stock_adjust
from lokaly_core.domain.model import orders as o
from lokaly_core.domain.model.picking import PickingStatus
from lokaly_core.domain.picking import order_advance_to, picking_complete, picking_start
from lokaly_core.domain.services import order_reserve_stock
from tests.domain.conftest import MILK, STAFF_ID, STORE, place
from tests.domain.fakes import FakeClock, FakeUnitOfWork

STAFF = STAFF_ID


def _confirmed(uow: FakeUnitOfWork) -> o.Order:
    order = place(uow, (MILK, 1))
    order_reserve_stock(uow=uow, clock=FakeClock(), order_id=order.id)
    return order


def test_picking_runs_start_then_complete_and_the_worker_moves_the_order(uow) -> None:
    order = _confirmed(uow)

    started = picking_start(uow=uow, clock=FakeClock(), order_id=order.id, staff_id=STAFF)
    moved = order_advance_to(
        uow=uow, clock=FakeClock(), order_id=order.id, target=o.OrderStatus.PICKING
    )
    done = picking_complete(uow=uow, clock=FakeClock(), order_id=order.id, staff_id=STAFF)
    ready = order_advance_to(
        uow=uow, clock=FakeClock(), order_id=order.id, target=o.OrderStatus.READY
    )

    assert started.status is PickingStatus.STARTED and started.started_by == STAFF
    assert done.status is PickingStatus.COMPLETED and done.completed_at is not None
    assert moved is not None and moved.status is o.OrderStatus.PICKING
    assert ready is not None and (ready.status, ready.status_version) == (o.OrderStatus.READY, 4)
    assert uow.types()[-4:] == [
        "picking.started",
        "order.status_changed",
        "picking.completed",
        "order.status_changed",
    ]


def test_picking_cannot_start_twice_or_on_a_pending_order(uow) -> None:
    pending = place(uow, (MILK, 1))
    with pytest.raises(InvalidTransition):
        picking_start(uow=uow, clock=FakeClock(), order_id=pending.id, staff_id=STAFF)

    order = _confirmed(uow)
    picking_start(uow=uow, clock=FakeClock(), order_id=order.id, staff_id=STAFF)
    with pytest.raises(InvalidTransition):
        picking_start(uow=uow, clock=FakeClock(), order_id=order.id, staff_id=STAFF)
    assert uow.types().count("picking.started") == 1


def test_picking_cannot_complete_before_it_starts(uow) -> None:
    order = _confirmed(uow)
    with pytest.raises(InvalidTransition):
        picking_complete(uow=uow, clock=FakeClock(), order_id=order.id, staff_id=STAFF)
    with pytest.raises(NotFound):
        picking_start(uow=uow, clock=FakeClock(), order_id=uuid.uuid4(), staff_id=STAFF)


def test_ready_arriving_before_picking_takes_both_steps_in_order(uow) -> None:
    order = _confirmed(uow)

    ready = order_advance_to(
        uow=uow, clock=FakeClock(), order_id=order.id, target=o.OrderStatus.READY
    )
    again = order_advance_to(
        uow=uow, clock=FakeClock(), order_id=order.id, target=o.OrderStatus.PICKING
    )

    assert ready is not None and ready.status is o.OrderStatus.READY
    assert again is not None and again.status_version == 4
    changes = [e.payload for e in uow.published if e.type == "order.status_changed"]
    assert [(c["status"], c["status_version"]) for c in changes[-2:]] == [
        ("picking", 3),
        ("ready", 4),
    ]


def test_a_cancelled_order_is_not_advanced(uow) -> None:
    order = _confirmed(uow)
    from lokaly_core.domain.services import order_cancel

    order_cancel(uow=uow, clock=FakeClock(), order_id=order.id, actor=o.Actor.ADMIN, reason="x")
    result = order_advance_to(
        uow=uow, clock=FakeClock(), order_id=order.id, target=o.OrderStatus.PICKING
    )
    assert result is not None and result.status is o.OrderStatus.CANCELLED


def test_adjustment_changes_on_hand_and_writes_the_ledger(uow) -> None:
    level = stock_adjust(
        uow=uow, store_id=STORE, product_id=MILK, delta=7, reason="delivery", actor_id=STAFF
    )

    assert (level.on_hand, level.reserved, level.available) == (12, 0, 12)
    assert uow.stock.ledger == [(MILK, 7, "delivery", STAFF)]


def test_adjustment_never_takes_on_hand_below_reserved(uow) -> None:
    _confirmed(uow)  # holds 1 milk of 5
    with pytest.raises(InsufficientStock) as err:
        stock_adjust(
            uow=uow, store_id=STORE, product_id=MILK, delta=-5, reason="broken", actor_id=STAFF
        )
    assert err.value.details == {"on_hand": 5, "reserved": 1, "available": 4, "delta": -5}
    assert uow.stock.rows[(STORE, MILK)] == {"on_hand": 5, "reserved": 1}
    assert uow.stock.ledger == []

    level = stock_adjust(
        uow=uow, store_id=STORE, product_id=MILK, delta=-4, reason="broken", actor_id=STAFF
    )
    assert (level.on_hand, level.available) == (1, 0)


@pytest.mark.parametrize(
    ("delta", "reason", "field"), [(0, "x", "delta"), (1, " ", "reason"), (True, "x", "delta")]
)
def test_adjustment_validates_its_input(uow, delta, reason, field) -> None:
    with pytest.raises(ValidationFailed) as err:
        stock_adjust(
            uow=uow, store_id=STORE, product_id=MILK, delta=delta, reason=reason, actor_id=None
        )
    assert field in err.value.details


def test_a_positive_adjustment_starts_carrying_a_known_product(uow) -> None:
    new = uuid.uuid4()
    uow.stock.known.add((STORE, new))

    level = stock_adjust(
        uow=uow, store_id=STORE, product_id=new, delta=3, reason="new line", actor_id=None
    )

    assert (level.on_hand, level.reserved) == (3, 0)
    with pytest.raises(NotFound):
        stock_adjust(
            uow=uow, store_id=STORE, product_id=uuid.uuid4(), delta=3, reason="x", actor_id=None
        )
    with pytest.raises(InsufficientStock):
        stock_adjust(
            uow=uow, store_id=STORE, product_id=uuid.uuid4(), delta=-3, reason="x", actor_id=None
        )
