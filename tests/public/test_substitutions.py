"""v1.1 substitutions on the real database: the customer's answer endpoint, the order's
rendering (REST == socket snapshot, with substitutions and amended items), the stock
figures, and the race of the customer's answer with the worker's expiry."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from lokaly_core.domain.errors import InvalidTransition
from lokaly_core.domain.model import orders as o
from lokaly_core.domain.picking import order_advance_to, picking_complete, picking_start
from lokaly_core.domain.services import order_reserve_stock
from lokaly_core.domain.substitutions import (
    SubstituteRequest,
    picking_record_line,
    substitution_answer,
    substitution_expire,
    substitutions_expire_due,
)
from lokaly_core.inventory.models import Stock
from lokaly_core.orders import selectors
from lokaly_core.orders.tracking import watched_order
from lokaly_core.orders.uow import DjangoUnitOfWork
from lokaly_core.outbox.models import OutboxEvent
from lokaly_core.picking.models import PickingLine
from tests.conftest import client_for
from tests.factories import UserFactory
from tests.public.conftest import assert_error

pytestmark = pytest.mark.django_db(transaction=True)


def _uow() -> DjangoUnitOfWork:
    return DjangoUnitOfWork()


@pytest.fixture
def picked(customer: Any, place: Any, stocked: Any) -> dict[str, Any]:
    """An order of 3 milk being picked; 4 oat drinks on the shelf."""
    milk, oat = stocked(on_hand=10, price_cents=129), stocked(on_hand=4, price_cents=189)
    order = place(customer, (milk.product_id, 3))
    order_reserve_stock(uow=_uow(), clock=timezone.now, order_id=order.id)
    picking_start(uow=_uow(), clock=timezone.now, order_id=order.id, staff_id=None)
    order_advance_to(
        uow=_uow(), clock=timezone.now, order_id=order.id, target=o.OrderStatus.PICKING
    )
    return {"order": order, "milk": milk, "oat": oat}


def _propose(picked: dict[str, Any], *, timeout: timedelta = timedelta(minutes=5)) -> None:
    picking_record_line(
        uow=_uow(),
        clock=timezone.now,
        order_id=picked["order"].id,
        product_id=picked["milk"].product_id,
        picked_quantity=1,
        substitute=SubstituteRequest(picked["oat"].product_id, 2),
        staff_id=None,
        timeout=timeout,
    )


def _figures(stock: Stock) -> tuple[int, int]:
    stock.refresh_from_db()
    return stock.on_hand, stock.reserved


def _answer_url(picked: dict[str, Any]) -> str:
    return f"/api/orders/{picked['order'].id}/substitutions/{picked['milk'].product_id}"


def test_the_socket_snapshot_renders_substitutions_and_amendments_as_rest(
    customer: Any, picked: dict[str, Any]
) -> None:
    order_id = picked["order"].id
    _propose(picked)

    def both() -> tuple[dict[str, Any], dict[str, Any]]:
        watched = watched_order(order_id=order_id, watcher_id=None, since=None)
        assert watched is not None
        rest = client_for(customer).get(f"/api/orders/{order_id}").json()
        return watched.order, rest

    snapshot, rest = both()
    assert (
        snapshot == rest == selectors.order_to_dict(selectors.orders_with_lines().get(pk=order_id))
    )
    assert [s["status"] for s in rest["substitutions"]] == ["proposed"]
    assert "picked_quantity" not in rest["items"][0]

    client_for(customer).post(_answer_url(picked), {"accept": True}, format="json")
    picking_complete(uow=_uow(), clock=timezone.now, order_id=order_id, staff_id=None)

    snapshot, rest = both()
    assert snapshot == rest
    assert [
        (i["quantity"], i["picked_quantity"], i["line_total_cents"]) for i in rest["items"]
    ] == [
        (3, 1, 129),
        (2, 2, 378),
    ]
    assert rest["items"][1]["substitute_for"] == str(picked["milk"].product_id)
    assert (rest["subtotal_cents"], rest["total_cents"]) == (507, 507 + rest["delivery_fee_cents"])
    assert _figures(picked["milk"]) == (10, 1) and _figures(picked["oat"]) == (4, 2)


def test_an_answer_after_the_expiry_is_409_and_releases_in_that_request(
    customer_client: Any, picked: dict[str, Any]
) -> None:
    # given a proposal already past its expiry, that no worker has expired yet
    _propose(picked, timeout=timedelta(0))
    assert _figures(picked["oat"]) == (4, 2)

    response = customer_client.post(_answer_url(picked), {"accept": True}, format="json")

    assert_error(response, 409, "invalid_transition")
    assert response.json()["error"]["details"]["status"] == "expired"
    assert _figures(picked["oat"]) == (4, 0)
    line = PickingLine.objects.get(order_id=picked["order"].id)
    assert (line.substitution_status, line.answered_at is not None) == ("expired", True)
    [answered] = OutboxEvent.objects.filter(
        aggregate_id=picked["order"].id, type="order.substitution_answered"
    )
    assert answered.payload["status"] == "expired"


def test_another_customer_gets_404_and_changes_nothing(picked: dict[str, Any]) -> None:
    _propose(picked)

    response = client_for(UserFactory.create()).post(
        _answer_url(picked), {"accept": False}, format="json"
    )

    assert_error(response, 404, "not_found")
    assert _figures(picked["oat"]) == (4, 2)


def test_no_proposal_or_an_unknown_order_is_refused(customer_client: Any, picked) -> None:
    assert_error(
        customer_client.post(_answer_url(picked), {"accept": True}, format="json"),
        409,
        "invalid_transition",
    )
    unknown = f"/api/orders/{uuid.uuid4()}/substitutions/{picked['milk'].product_id}"
    assert_error(customer_client.post(unknown, {"accept": True}, format="json"), 404, "not_found")
    assert_error(
        customer_client.post(_answer_url(picked), {"accept": "true"}, format="json"),
        400,
        "validation_error",
    )


def test_the_answer_and_the_expiry_racing_end_a_proposal_once(
    customer: Any, picked: dict[str, Any]
) -> None:
    """Threads answer (as the customer) and expire (as workers) one due proposal at
    once: exactly one ends it, its units are released once."""
    _propose(picked, timeout=timedelta(0))
    order_id, product_id = picked["order"].id, picked["milk"].product_id
    barrier = threading.Barrier(6)
    results: list[str] = []
    errors: list[BaseException] = []

    def answer() -> None:
        try:
            barrier.wait(timeout=10)
            substitution_answer(
                uow=_uow(),
                clock=timezone.now,
                order_id=order_id,
                product_id=product_id,
                customer_id=customer.id,
                accept=True,
            )
            results.append("accepted")
        except InvalidTransition as exc:
            results.append(f"refused:{exc.details.get('status')}")
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    def expire() -> None:
        try:
            barrier.wait(timeout=10)
            done = substitution_expire(
                uow=_uow(), clock=timezone.now, order_id=order_id, product_id=product_id
            )
            results.append("expired" if done else "noop")
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=answer) for _ in range(3)]
    threads += [threading.Thread(target=expire) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)

    assert not errors, errors
    # every answer is refused (the proposal was due), at most one expiry did the work,
    # and exactly one of all of them ended it: one event, one release
    assert Counter(r for r in results if r.startswith("refused")) == {"refused:expired": 3}
    assert results.count("expired") <= 1, results
    assert _figures(picked["oat"]) == (4, 0)
    assert (
        OutboxEvent.objects.filter(
            aggregate_id=order_id, type="order.substitution_answered"
        ).count()
        == 1
    )


def test_the_periodic_expiry_releases_due_proposals(picked: dict[str, Any]) -> None:
    _propose(picked, timeout=timedelta(0))

    assert substitutions_expire_due(new_uow=_uow, clock=timezone.now, limit=10) == 1
    assert substitutions_expire_due(new_uow=_uow, clock=timezone.now, limit=10) == 0

    assert _figures(picked["oat"]) == (4, 0)
    assert _figures(picked["milk"]) == (10, 3)
