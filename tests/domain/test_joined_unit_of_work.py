"""A service that finds nothing to do still ends its unit of work with ``commit()``, so a
unit joined to its caller's transaction (the worker's handler transaction) never dooms
it (docs/reliability.md, "Batched worker": the worker owns the transaction)."""

from __future__ import annotations

import uuid

from lokaly_core.domain.model import orders as o
from lokaly_core.domain.picking import order_advance_to
from lokaly_core.domain.services import order_cancel, order_reserve_stock
from tests.domain.conftest import MILK, place
from tests.domain.fakes import FakeClock, FakeUnitOfWork


def test_reserving_stock_for_an_order_no_longer_pending_commits_nothing_but_commits(
    uow: FakeUnitOfWork,
) -> None:
    # given an order the customer cancelled before the worker got to it
    order = place(uow, (MILK, 1))
    order_cancel(
        uow=uow, clock=FakeClock(), order_id=order.id, actor=o.Actor.CUSTOMER, reason="changed"
    )
    commits, published = uow.commits, len(uow.published)

    # when the worker reserves its stock
    result = order_reserve_stock(uow=uow, clock=FakeClock(), order_id=order.id)

    # then nothing changed, no event, and the unit of work was committed (not abandoned)
    assert result is not None and result.status is o.OrderStatus.CANCELLED
    assert uow.commits == commits + 1
    assert len(uow.published) == published
    assert uow.stock.rows[(order.store_id, MILK)]["reserved"] == 0


def test_reserving_stock_for_an_unknown_order_commits(uow: FakeUnitOfWork) -> None:
    assert order_reserve_stock(uow=uow, clock=FakeClock(), order_id=uuid.uuid4()) is None
    assert uow.commits == 1


def test_advancing_an_order_already_there_commits_without_a_change(uow: FakeUnitOfWork) -> None:
    # given a confirmed order moved to picking
    order = place(uow, (MILK, 1))
    order_reserve_stock(uow=uow, clock=FakeClock(), order_id=order.id)
    order_advance_to(uow=uow, clock=FakeClock(), order_id=order.id, target=o.OrderStatus.PICKING)
    commits, published = uow.commits, len(uow.published)

    # when picking.started is handled again
    again = order_advance_to(
        uow=uow, clock=FakeClock(), order_id=order.id, target=o.OrderStatus.PICKING
    )

    # then it is a no-op commit
    assert again is not None and again.status is o.OrderStatus.PICKING
    assert uow.commits == commits + 1
    assert len(uow.published) == published
