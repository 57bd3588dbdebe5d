"""Short picks and substitutions (v1.1) against in-memory ports: the stock an order holds
is ``Order.stock_lines()`` at every step, and that is what is released and consumed."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from lokaly_core.domain.errors import (
    InsufficientStock,
    InvalidTransition,
    NotFound,
    ValidationFailed,
)
from lokaly_core.domain.model import orders as o
from lokaly_core.domain.model.catalog import Offer
from lokaly_core.domain.model.picking import SubstitutionStatus
from lokaly_core.domain.picking import order_advance_to, picking_complete, picking_start
from lokaly_core.domain.services import order_cancel, order_reserve_stock
from lokaly_core.domain.substitutions import (
    SubstituteRequest,
    picking_record_line,
    substitution_answer,
    substitution_expire,
    substitutions_expire_due,
)
from tests.domain.conftest import BREAD, CUSTOMER, MILK, STAFF_ID, STORE, place
from tests.domain.fakes import FakeClock, FakeUnitOfWork

OAT = uuid.uuid4()
TIMEOUT = timedelta(seconds=300)


@pytest.fixture
def picking(uow: FakeUnitOfWork) -> o.Order:
    """3 milk and 1 bread, confirmed, picking started; 3 oat drinks on the shelf."""
    uow.catalog.offers[(STORE, OAT)] = Offer(OAT, "Oat drink 1L", 189, "EUR", True)
    uow.stock.put(STORE, OAT, on_hand=3)
    order = place(uow, (MILK, 3), (BREAD, 1))
    order_reserve_stock(uow=uow, clock=FakeClock(), order_id=order.id)
    picking_start(uow=uow, clock=FakeClock(), order_id=order.id, staff_id=STAFF_ID)
    order_advance_to(uow=uow, clock=FakeClock(), order_id=order.id, target=o.OrderStatus.PICKING)
    return order


def _stock(uow: FakeUnitOfWork, product: uuid.UUID) -> tuple[int, int]:
    row = uow.stock.rows[(STORE, product)]
    return row["on_hand"], row["reserved"]


def _record(uow, order, product, picked, substitute=None, clock=None):
    return picking_record_line(
        uow=uow,
        clock=clock or FakeClock(),
        order_id=order.id,
        product_id=product,
        picked_quantity=picked,
        substitute=SubstituteRequest(*substitute) if substitute else None,
        staff_id=STAFF_ID,
        timeout=TIMEOUT,
    )


def _answer(uow, order, accept, clock=None, customer=CUSTOMER):
    return substitution_answer(
        uow=uow,
        clock=clock or FakeClock(),
        order_id=order.id,
        product_id=MILK,
        customer_id=customer,
        accept=accept,
    )


def _complete(uow, order, clock=None):
    return picking_complete(
        uow=uow, clock=clock or FakeClock(), order_id=order.id, staff_id=STAFF_ID
    )


def _held(uow: FakeUnitOfWork, order: o.Order) -> list[tuple[uuid.UUID, int]]:
    loaded = uow.orders.get_for_update(order.id)
    assert loaded is not None
    return loaded.stock_lines()


def _sorted(*pairs: tuple[uuid.UUID, int]) -> list[tuple[uuid.UUID, int]]:
    return sorted(pairs, key=lambda p: str(p[0]))


def test_short_line_with_an_accepted_substitute_amends_the_order(uow, picking) -> None:
    # when
    record = _record(uow, picking, MILK, 1, (OAT, 2))
    # then the substitute's units are held for the order
    assert record.substitute is not None and record.substitute.status is SubstitutionStatus.PROPOSED
    assert _stock(uow, OAT) == (3, 2)
    assert _held(uow, picking) == _sorted((MILK, 3), (BREAD, 1), (OAT, 2))

    accepted = _answer(uow, picking, accept=True)
    assert accepted.status is SubstitutionStatus.ACCEPTED
    assert _held(uow, picking) == _sorted((MILK, 3), (BREAD, 1), (OAT, 2))

    _complete(uow, picking)

    order = uow.orders.get_for_update(picking.id)
    assert order is not None
    assert [
        (x.product_id, x.quantity, x.picked_quantity, x.substitute_for) for x in order.lines
    ] == [
        (MILK, 3, 1, None),
        (BREAD, 1, 1, None),
        (OAT, 2, 2, MILK),
    ]
    assert (order.subtotal_cents, order.total_cents) == (129 + 289 + 2 * 189, 129 + 289 + 378 + 199)
    assert order.stock_lines() == _sorted((MILK, 1), (BREAD, 1), (OAT, 2))
    assert (_stock(uow, MILK), _stock(uow, BREAD), _stock(uow, OAT)) == ((5, 1), (1, 1), (3, 2))
    assert uow.types()[-4:] == [
        "order.substitution_answered",
        "inventory.released",
        "order.amended",
        "picking.completed",
    ]
    released, amended, completed = (e.payload for e in uow.published[-3:])
    assert released["lines"] == [{"product_id": str(MILK), "quantity": 2}]
    assert released["reason"] == "not_picked"
    assert amended["previous_total_cents"] == 3 * 129 + 289 + 199
    assert amended["total_cents"] == order.total_cents
    assert [line["product_id"] for line in amended["lines"]] == [str(MILK), str(OAT)]
    assert completed["amended"] is True


def test_pickup_after_the_amendment_consumes_what_was_picked(uow, picking) -> None:
    """``consume`` takes ``stock_lines``: after the amendment, picked units only."""
    _record(uow, picking, MILK, 1, (OAT, 2))
    _answer(uow, picking, accept=True)
    _complete(uow, picking)
    order = uow.orders.get_for_update(picking.id)
    assert order is not None

    uow.stock.consume(STORE, order.stock_lines())

    assert (_stock(uow, MILK), _stock(uow, BREAD), _stock(uow, OAT)) == ((4, 0), (0, 0), (1, 0))


def test_a_rejected_substitute_is_released_at_once(uow, picking) -> None:
    _record(uow, picking, MILK, 1, (OAT, 2))

    rejected = _answer(uow, picking, accept=False)

    assert rejected.status is SubstitutionStatus.REJECTED
    assert _stock(uow, OAT) == (3, 0)
    assert _held(uow, picking) == _sorted((MILK, 3), (BREAD, 1))
    assert uow.published[-1].payload["released_quantity"] == 2
    _complete(uow, picking)
    order = uow.orders.get_for_update(picking.id)
    assert order is not None
    assert [(x.product_id, x.picked_quantity) for x in order.lines] == [(MILK, 1), (BREAD, 1)]
    assert order.total_cents == 129 + 289 + 199
    assert (_stock(uow, MILK), _stock(uow, OAT)) == ((5, 1), (3, 0))


def test_an_answer_after_the_expiry_is_refused_and_expires_the_proposal(uow, picking) -> None:
    clock = FakeClock()
    _record(uow, picking, MILK, 1, (OAT, 2), clock=clock)
    clock.now += TIMEOUT

    with pytest.raises(InvalidTransition) as raised:
        _answer(uow, picking, accept=True, clock=clock)

    assert raised.value.details["status"] == "expired"
    assert _stock(uow, OAT) == (3, 0)
    line = uow.picking.lines(picking.id)[0]
    assert line.substitute is not None and line.substitute.status is SubstitutionStatus.EXPIRED
    assert uow.published[-1].payload["status"] == "expired"
    with pytest.raises(InvalidTransition):  # answered already
        _answer(uow, picking, accept=True, clock=clock)


def test_completion_waits_for_an_open_proposal_then_expires_a_due_one(uow, picking) -> None:
    clock = FakeClock()
    _record(uow, picking, MILK, 2, (OAT, 1), clock=clock)
    published = len(uow.published)

    with pytest.raises(InvalidTransition) as raised:
        _complete(uow, picking, clock=clock)

    assert raised.value.details == {"waiting_for": [str(MILK)]}
    assert len(uow.published) == published and _stock(uow, OAT) == (3, 1)
    clock.now += TIMEOUT
    _complete(uow, picking, clock=clock)
    assert _stock(uow, OAT) == (3, 0)
    assert uow.types()[-4:] == [
        "order.substitution_answered",
        "inventory.released",
        "order.amended",
        "picking.completed",
    ]


def test_the_worker_expires_due_proposals_once(uow, picking) -> None:
    clock = FakeClock()
    _record(uow, picking, MILK, 1, (OAT, 2), clock=clock)
    assert substitutions_expire_due(new_uow=lambda: uow, clock=clock, limit=10) == 0

    clock.now += TIMEOUT
    assert substitutions_expire_due(new_uow=lambda: uow, clock=clock, limit=10) == 1
    assert substitutions_expire_due(new_uow=lambda: uow, clock=clock, limit=10) == 0

    assert _stock(uow, OAT) == (3, 0)
    with pytest.raises(InvalidTransition):
        _answer(uow, picking, accept=True, clock=clock)
    assert not substitution_expire(uow=uow, clock=clock, order_id=picking.id, product_id=MILK)


def test_nothing_picked_cancels_the_order_and_releases_everything(uow, picking) -> None:
    _record(uow, picking, MILK, 0, (OAT, 1))
    _answer(uow, picking, accept=False)
    _record(uow, picking, BREAD, 0)

    _complete(uow, picking)

    order = uow.orders.get_for_update(picking.id)
    assert order is not None
    assert (order.status, order.cancel_reason) == (o.OrderStatus.CANCELLED, "nothing_picked")
    assert (_stock(uow, MILK), _stock(uow, BREAD), _stock(uow, OAT)) == ((5, 0), (1, 0), (3, 0))
    assert "order.amended" not in uow.types()
    assert uow.types()[-4:] == [
        "picking.completed",
        "inventory.released",
        "order.status_changed",
        "order.cancelled",
    ]
    assert uow.published[-4].payload["amended"] is False
    assert uow.published[-1].payload["cancelled_by"] == "admin"


def test_admin_cancel_during_picking_releases_the_pending_proposal_too(uow, picking) -> None:
    clock = FakeClock()
    _record(uow, picking, MILK, 1, (OAT, 2), clock=clock)

    order_cancel(uow=uow, clock=clock, order_id=picking.id, actor=o.Actor.ADMIN, reason="closing")

    assert (_stock(uow, MILK), _stock(uow, BREAD), _stock(uow, OAT)) == ((5, 0), (1, 0), (3, 0))
    released = next(e for e in uow.published if e.type == "inventory.released")
    assert {(line["product_id"], line["quantity"]) for line in released.payload["lines"]} == {
        (str(MILK), 3),
        (str(BREAD), 1),
        (str(OAT), 2),
    }
    # the proposal still open expires later without releasing anything again
    clock.now += TIMEOUT
    assert substitution_expire(uow=uow, clock=clock, order_id=picking.id, product_id=MILK)
    assert uow.published[-1].payload["released_quantity"] == 0
    assert _stock(uow, OAT) == (3, 0)


def test_a_substitute_short_of_stock_is_refused_and_holds_nothing(uow, picking) -> None:
    with pytest.raises(InsufficientStock) as raised:
        _record(uow, picking, MILK, 1, (OAT, 4))

    assert raised.value.details == {"product_id": str(OAT), "available": 3, "requested": 4}
    assert _stock(uow, OAT) == (3, 0) and uow.picking.lines(picking.id) == []


def test_recording_a_line_again_replaces_its_proposal(uow, picking) -> None:
    _record(uow, picking, MILK, 1, (OAT, 2))

    _record(uow, picking, MILK, 0, (OAT, 3))  # 3 fit: the 2 held are counted back
    assert _stock(uow, OAT) == (3, 3)
    _record(uow, picking, MILK, 2)

    assert _stock(uow, OAT) == (3, 0)
    assert _held(uow, picking) == _sorted((MILK, 3), (BREAD, 1))
    [line] = uow.picking.lines(picking.id)
    assert (line.picked_quantity, line.substitute) == (2, None)


@pytest.mark.parametrize(
    ("product", "picked", "substitute", "field"),
    [
        (MILK, 4, None, "picked_quantity"),
        (MILK, -1, None, "picked_quantity"),
        (MILK, True, None, "picked_quantity"),
        (MILK, 3, (OAT, 1), "substitute"),
        (MILK, 1, (BREAD, 1), "substitute.product_id"),
        (MILK, 1, (OAT, 0), "substitute.quantity"),
        (MILK, 1, (OAT, 100), "substitute.quantity"),
        (MILK, 1, (uuid.UUID(int=7), 1), "substitute.product_id"),
    ],
)
def test_bad_lines_are_validation_errors(uow, picking, product, picked, substitute, field) -> None:
    with pytest.raises(ValidationFailed) as raised:
        _record(uow, picking, product, picked, substitute)

    assert field in raised.value.details
    assert uow.picking.lines(picking.id) == []


def test_a_substitute_in_another_currency_or_inactive_is_refused(uow, picking) -> None:
    uow.catalog.offers[(STORE, OAT)] = Offer(OAT, "Oat drink 1L", 189, "USD", True)
    with pytest.raises(ValidationFailed):
        _record(uow, picking, MILK, 1, (OAT, 1))
    uow.catalog.offers[(STORE, OAT)] = Offer(OAT, "Oat drink 1L", 189, "EUR", False)
    with pytest.raises(ValidationFailed):
        _record(uow, picking, MILK, 1, (OAT, 1))


def test_a_product_not_on_the_order_or_a_picking_not_started_is_refused(uow, picking) -> None:
    with pytest.raises(NotFound):
        _record(uow, picking, OAT, 0)
    other = place(uow, (MILK, 1))
    order_reserve_stock(uow=uow, clock=FakeClock(), order_id=other.id)
    with pytest.raises(InvalidTransition):
        _record(uow, other, MILK, 0)


def test_only_the_orders_customer_may_answer(uow, picking) -> None:
    _record(uow, picking, MILK, 1, (OAT, 2))

    with pytest.raises(NotFound):
        _answer(uow, picking, accept=True, customer=uuid.uuid4())

    assert _stock(uow, OAT) == (3, 2)


def test_a_picking_without_changes_is_the_v1_one(uow, picking) -> None:
    _record(uow, picking, MILK, 3)

    _complete(uow, picking)

    order = uow.orders.get_for_update(picking.id)
    assert order is not None and not order.amended
    assert all(line.picked_quantity is None for line in order.lines)
    assert uow.types()[-1] == "picking.completed" and "order.amended" not in uow.types()
    assert uow.published[-1].payload["amended"] is False
    assert uow.orders.amended == []
