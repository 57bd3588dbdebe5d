"""Domain services against in-memory ports: no database, no Django."""

from __future__ import annotations

import uuid

import pytest

from lokaly_core.domain.errors import InvalidTransition, NotFound, ValidationFailed
from lokaly_core.domain.model import orders as o
from lokaly_core.domain.model.catalog import Offer, StoreInfo
from lokaly_core.domain.services import (
    order_cancel,
    order_reserve_stock,
)
from tests.domain.conftest import BREAD, CUSTOMER, MILK, STORE, place
from tests.domain.fakes import FakeClock, FakeUnitOfWork


def test_place_order_prices_lines_and_emits_order_created(uow: FakeUnitOfWork) -> None:
    order = place(uow, (MILK, 2), (BREAD, 1))

    assert order.status is o.OrderStatus.PENDING
    assert order.status_version == 1
    assert order.number == "LK-000001"
    assert [(line.name, line.line_total_cents) for line in order.lines] == [
        ("Milk 1L", 258),
        ("Bread", 289),
    ]
    assert (order.subtotal_cents, order.total_cents, order.currency) == (547, 746, "EUR")
    assert uow.types() == ["order.created"]
    assert uow.published[0].payload["total_cents"] == 746
    assert [c.status_version for c in uow.orders.history[order.id]] == [1]


@pytest.mark.parametrize(
    ("items", "field"),
    [
        ([], "items"),
        ([(MILK, 0)], "items.0.quantity"),
        ([(MILK, 100)], "items.0.quantity"),
        ([(MILK, 1), (MILK, 2)], "items.1.product_id"),
        ([(uuid.uuid4(), 1)], "items.0.product_id"),
    ],
)
def test_place_order_refuses_invalid_items(uow: FakeUnitOfWork, items, field: str) -> None:
    with pytest.raises(ValidationFailed) as err:
        place(uow, *items)
    assert field in err.value.details
    assert uow.published == [] and uow.orders.rows == {}


def test_place_order_refuses_more_than_fifty_items(uow: FakeUnitOfWork) -> None:
    items = [(uuid.uuid4(), 1) for _ in range(51)]
    with pytest.raises(ValidationFailed) as err:
        place(uow, *items)
    assert "items" in err.value.details


@pytest.mark.parametrize(
    ("address", "field"),
    [
        (o.Address("a", "b", "c", lat=90.5, lng=0), "delivery_address.lat"),
        (o.Address("a", "b", "c", lat=0, lng=-180.1), "delivery_address.lng"),
        (o.Address(" ", "b", "c", lat=0, lng=0), "delivery_address.line1"),
    ],
)
def test_place_order_refuses_bad_addresses(uow: FakeUnitOfWork, address, field: str) -> None:
    with pytest.raises(ValidationFailed) as err:
        place(uow, (MILK, 1), address=address)
    assert field in err.value.details


def test_place_order_refuses_long_note_and_inactive_store_and_product(uow: FakeUnitOfWork) -> None:
    with pytest.raises(ValidationFailed, match="invalid") as err:
        place(uow, (MILK, 1), note="x" * 501)
    assert "note" in err.value.details

    uow.catalog.offers[(STORE, BREAD)] = Offer(BREAD, "Bread", 289, "EUR", is_active=False)
    with pytest.raises(ValidationFailed) as err:
        place(uow, (BREAD, 1))
    assert "items.0.product_id" in err.value.details

    uow.catalog.stores[STORE] = StoreInfo(id=STORE, is_active=False)
    with pytest.raises(ValidationFailed) as err:
        place(uow, (MILK, 1))
    assert "store_id" in err.value.details


def test_reserving_confirms_and_holds_stock(uow: FakeUnitOfWork) -> None:
    order = place(uow, (MILK, 2), (BREAD, 1))

    confirmed = order_reserve_stock(uow=uow, clock=FakeClock(), order_id=order.id)

    assert confirmed is not None and confirmed.status is o.OrderStatus.CONFIRMED
    assert confirmed.status_version == 2
    assert confirmed.stock_state is o.StockState.RESERVED
    assert uow.stock.rows[(STORE, MILK)] == {"on_hand": 5, "reserved": 2}
    assert uow.stock.rows[(STORE, BREAD)] == {"on_hand": 1, "reserved": 1}
    assert uow.types() == ["order.created", "inventory.reserved", "order.status_changed"]


def test_reserving_is_all_or_nothing_and_cancels_out_of_stock(uow: FakeUnitOfWork) -> None:
    order = place(uow, (MILK, 2), (BREAD, 2))  # only 1 bread

    result = order_reserve_stock(uow=uow, clock=FakeClock(), order_id=order.id)

    assert result is not None and result.status is o.OrderStatus.CANCELLED
    assert result.cancel_reason == "out_of_stock"
    assert uow.stock.rows[(STORE, MILK)] == {"on_hand": 5, "reserved": 0}
    assert uow.types() == ["order.created", "order.status_changed", "order.cancelled"]
    assert uow.published[1].payload["status"] == "cancelled"
    assert uow.published[1].payload["reason"] == "out_of_stock"


def test_reserving_twice_has_effects_once(uow: FakeUnitOfWork) -> None:
    order = place(uow, (MILK, 2))
    order_reserve_stock(uow=uow, clock=FakeClock(), order_id=order.id)

    again = order_reserve_stock(uow=uow, clock=FakeClock(), order_id=order.id)

    assert again is not None and again.status_version == 2
    assert uow.stock.rows[(STORE, MILK)]["reserved"] == 2
    assert uow.types().count("inventory.reserved") == 1


def test_reserving_a_missing_order_does_nothing(uow: FakeUnitOfWork) -> None:
    assert order_reserve_stock(uow=uow, clock=FakeClock(), order_id=uuid.uuid4()) is None
    assert uow.published == []


def test_cancel_releases_reserved_stock(uow: FakeUnitOfWork) -> None:
    order = place(uow, (MILK, 3))
    order_reserve_stock(uow=uow, clock=FakeClock(), order_id=order.id)

    cancelled = order_cancel(
        uow=uow,
        clock=FakeClock(),
        order_id=order.id,
        actor=o.Actor.CUSTOMER,
        reason="changed my mind",
        customer_id=CUSTOMER,
    )

    assert cancelled.status is o.OrderStatus.CANCELLED and cancelled.status_version == 3
    assert cancelled.stock_state is o.StockState.RELEASED
    assert uow.stock.rows[(STORE, MILK)] == {"on_hand": 5, "reserved": 0}
    assert uow.types()[-3:] == ["inventory.released", "order.status_changed", "order.cancelled"]


def test_customer_cannot_cancel_someone_elses_order(uow: FakeUnitOfWork) -> None:
    order = place(uow, (MILK, 1))
    with pytest.raises(NotFound):
        order_cancel(
            uow=uow,
            clock=FakeClock(),
            order_id=order.id,
            actor=o.Actor.CUSTOMER,
            reason="x",
            customer_id=uuid.uuid4(),
        )
    assert uow.orders.rows[order.id].status is o.OrderStatus.PENDING


@pytest.mark.parametrize(
    ("status", "actor", "allowed"),
    [
        (o.OrderStatus.PENDING, o.Actor.CUSTOMER, True),
        (o.OrderStatus.CONFIRMED, o.Actor.CUSTOMER, True),
        (o.OrderStatus.PICKING, o.Actor.CUSTOMER, False),
        (o.OrderStatus.READY, o.Actor.CUSTOMER, False),
        (o.OrderStatus.PICKING, o.Actor.ADMIN, True),
        (o.OrderStatus.READY, o.Actor.ADMIN, True),
        (o.OrderStatus.OUT_FOR_DELIVERY, o.Actor.ADMIN, False),
        (o.OrderStatus.DELIVERED, o.Actor.ADMIN, False),
        (o.OrderStatus.CANCELLED, o.Actor.ADMIN, False),
    ],
)
def test_who_may_cancel_in_which_status(uow: FakeUnitOfWork, status, actor, allowed: bool) -> None:
    order = place(uow, (MILK, 1))
    uow.orders.rows[order.id].status = status

    if allowed:
        result = order_cancel(
            uow=uow, clock=FakeClock(), order_id=order.id, actor=actor, reason="r"
        )
        assert result.status is o.OrderStatus.CANCELLED
    else:
        with pytest.raises(InvalidTransition):
            order_cancel(uow=uow, clock=FakeClock(), order_id=order.id, actor=actor, reason="r")
        assert uow.orders.rows[order.id].status is status
        assert uow.types() == ["order.created"]


def test_status_machine_allows_exactly_the_contract_moves() -> None:
    s = o.OrderStatus
    forward = [
        (s.PENDING, s.CONFIRMED),
        (s.CONFIRMED, s.PICKING),
        (s.PICKING, s.READY),
        (s.READY, s.OUT_FOR_DELIVERY),
        (s.OUT_FOR_DELIVERY, s.DELIVERED),
    ]
    for current, target in forward:
        assert o.can_transition(current, target, o.Actor.SYSTEM)
    for current in s:
        for target in s:
            allowed = any(o.can_transition(current, target, a) for a in o.Actor)
            expected = (current, target) in forward or (
                target is s.CANCELLED and current in {s.PENDING, s.CONFIRMED, s.PICKING, s.READY}
            )
            assert allowed == expected, (current, target)
