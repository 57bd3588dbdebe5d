"""Admin API, v1.1: recording picking lines, and the order detail's picking lines and
substitutions (with the detail's fixed number of queries)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from lokaly_core.accounts.models import User
from lokaly_core.domain.picking import picking_start
from lokaly_core.inventory.models import Stock
from lokaly_core.orders.models import Order
from lokaly_core.orders.uow import DjangoUnitOfWork
from lokaly_core.outbox.models import OutboxEvent
from tests.admin.test_orders import MISSING, staff_client
from tests.factories import StockFactory
from tests.public.conftest import ISO_UTC, assert_error


@pytest.fixture
def admin(staff_admin: User) -> APIClient:
    return staff_client(staff_admin)


@pytest.fixture
def picking(make_order: Callable[..., Order]) -> tuple[Order, Stock, Stock]:
    """An order of 3 (picking started) and a substitute with 5 on the shelf."""
    milk = StockFactory.create(on_hand=10)
    oat = StockFactory.create(store=milk.store, on_hand=5, product__price_cents=189)
    order = make_order(milk, quantity=3)
    picking_start(uow=DjangoUnitOfWork(), clock=timezone.now, order_id=order.id, staff_id=None)
    return order, milk, oat


def _line(order: Order, product: Any) -> str:
    return f"/api/admin/orders/{order.id}/picking/lines/{product}"


def test_recording_a_short_line_with_a_substitute_answers_the_picking(
    admin: APIClient, staff_admin: User, picking: tuple[Order, Stock, Stock]
) -> None:
    order, milk, oat = picking
    body = {"picked_quantity": 1, "substitute": {"product_id": str(oat.product_id), "quantity": 2}}

    response = admin.post(_line(order, milk.product_id), body, format="json")

    assert response.status_code == 200, response.content
    picked = response.json()
    assert set(picked) == {"order_id", "status", "started_at", "completed_at", "lines"}
    [line] = picked["lines"]
    substitute = line.pop("substitute")
    assert ISO_UTC.match(line.pop("recorded_at"))
    assert line == {
        "product_id": str(milk.product_id),
        "ordered_quantity": 3,
        "picked_quantity": 1,
    }
    assert ISO_UTC.match(substitute.pop("expires_at"))
    assert substitute == {
        "product_id": str(oat.product_id),
        "name": oat.product.name,
        "quantity": 2,
        "unit_price_cents": 189,
        "status": "proposed",
        "answered_at": None,
    }
    oat.refresh_from_db()
    assert (oat.on_hand, oat.reserved) == (5, 2)
    [event] = OutboxEvent.objects.filter(aggregate_id=order.id, type="order.substitution_proposed")
    assert event.payload["staff_id"] == str(staff_admin.id)


def test_the_detail_carries_picking_lines_and_substitutions_in_fixed_queries(
    admin: APIClient,
    picking: tuple[Order, Stock, Stock],
    django_assert_max_num_queries: Any,
) -> None:
    order, milk, oat = picking
    body = {"picked_quantity": 2, "substitute": {"product_id": str(oat.product_id), "quantity": 1}}
    assert admin.post(_line(order, milk.product_id), body, format="json").status_code == 200

    # user, order with customer and picking (and its lines), lines, delivery, history, events
    with django_assert_max_num_queries(6):
        detail = admin.get(f"/api/admin/orders/{order.id}").json()

    assert detail["picking"]["lines"][0]["substitute"]["status"] == "proposed"
    assert detail["substitutions"] == [
        {
            "product_id": str(milk.product_id),
            "substitute": {
                "product_id": str(oat.product_id),
                "name": oat.product.name,
                "quantity": 1,
                "unit_price_cents": 189,
            },
            "status": "proposed",
            "expires_at": detail["picking"]["lines"][0]["substitute"]["expires_at"],
        }
    ]
    row = admin.get("/api/admin/orders").json()["results"][0]
    assert row["substitutions"] == detail["substitutions"]


def test_a_v1_order_detail_keeps_its_shape(
    admin: APIClient, make_order: Callable[..., Order]
) -> None:
    order = make_order(StockFactory.create(on_hand=5))

    detail = admin.get(f"/api/admin/orders/{order.id}").json()

    assert "substitutions" not in detail and detail["picking"] is None
    assert set(detail["items"][0]) == {
        "product_id",
        "name",
        "quantity",
        "unit_price_cents",
        "line_total_cents",
    }


def test_lines_are_recorded_only_while_picking(
    admin: APIClient, make_order: Callable[..., Order]
) -> None:
    stock = StockFactory.create(on_hand=5)
    order = make_order(stock)

    not_started = admin.post(_line(order, stock.product_id), {"picked_quantity": 0}, format="json")
    unknown = admin.post(
        f"/api/admin/orders/{MISSING}/picking/lines/{stock.product_id}",
        {"picked_quantity": 0},
        format="json",
    )

    assert_error(not_started, 409, "invalid_transition")
    assert_error(unknown, 404, "not_found")
