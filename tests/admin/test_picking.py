"""Admin picking: start and complete emit the events; wrong state is 409, unknown order 404."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.test import APIClient

from lokaly_core.accounts.models import User
from lokaly_core.events.contracts import parse_timestamp
from lokaly_core.inventory.models import Stock
from lokaly_core.orders.models import Order
from lokaly_core.outbox.models import OutboxEvent
from lokaly_core.picking.models import Picking
from tests.admin.test_orders import MISSING, staff_client
from tests.conftest import stream_envelopes, wait_until
from tests.factories import StockFactory
from tests.public.conftest import ISO_UTC, assert_error


@pytest.fixture
def admin(staff_admin: User) -> APIClient:
    return staff_client(staff_admin)


@pytest.fixture
def stock(db: None) -> Stock:
    return StockFactory.create(on_hand=20)


def _events(order: Order, type_: str) -> list[OutboxEvent]:
    return list(OutboxEvent.objects.filter(aggregate_id=order.id, type=type_))


def test_start_picking_a_confirmed_order_answers_the_picking_and_emits_the_event(
    admin: APIClient,
    staff_admin: User,
    make_order: Callable[..., Order],
    stock: Stock,
    django_capture_on_commit_callbacks: Any,
) -> None:
    order = make_order(stock)

    with django_capture_on_commit_callbacks(execute=True):
        response = admin.post(f"/api/admin/orders/{order.id}/picking/start")

    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"order_id", "status", "started_at", "completed_at"}
    assert (body["order_id"], body["status"], body["completed_at"]) == (
        str(order.id),
        "started",
        None,
    )
    assert ISO_UTC.match(body["started_at"])
    picking = Picking.objects.get(order=order)
    assert (picking.status, picking.started_by_id) == ("started", staff_admin.id)
    [event] = _events(order, "picking.started")
    assert event.payload["order_id"] == str(order.id)
    assert event.payload["staff_id"] == str(staff_admin.id)
    # the order itself moves when the worker handles the event, not in the request
    order.refresh_from_db()
    assert order.status == "confirmed"
    # and the event reaches the stream once the transaction commits
    published = wait_until(lambda: [e for e in stream_envelopes() if e.type == "picking.started"])
    assert [e.event_id for e in published] == [event.event_id]


def test_complete_a_started_picking(
    admin: APIClient, make_order: Callable[..., Order], stock: Stock
) -> None:
    order = make_order(stock)
    admin.post(f"/api/admin/orders/{order.id}/picking/start")

    response = admin.post(f"/api/admin/orders/{order.id}/picking/complete")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "completed"
    assert ISO_UTC.match(body["completed_at"])
    assert parse_timestamp(body["completed_at"]) >= parse_timestamp(body["started_at"])
    assert len(_events(order, "picking.completed")) == 1
    assert Picking.objects.get(order=order).status == "completed"


@pytest.mark.parametrize("status", ["pending", "picking", "ready", "delivered", "cancelled"])
def test_start_on_an_order_that_is_not_confirmed_is_409(
    admin: APIClient, make_order: Callable[..., Order], stock: Stock, status: str
) -> None:
    order = make_order(stock, confirm=status != "pending")
    Order.objects.filter(pk=order.pk).update(status=status)

    details = assert_error(
        admin.post(f"/api/admin/orders/{order.id}/picking/start"), 409, "invalid_transition"
    )

    assert details["status"] == status
    assert not Picking.objects.filter(order=order).exists()
    assert _events(order, "picking.started") == []


def test_start_twice_is_409_and_emits_once(
    admin: APIClient, make_order: Callable[..., Order], stock: Stock
) -> None:
    order = make_order(stock)
    assert admin.post(f"/api/admin/orders/{order.id}/picking/start").status_code == 200

    assert_error(
        admin.post(f"/api/admin/orders/{order.id}/picking/start"), 409, "invalid_transition"
    )
    assert len(_events(order, "picking.started")) == 1


@pytest.mark.parametrize("started", [False, True])
def test_complete_without_a_started_picking_is_409(
    admin: APIClient, make_order: Callable[..., Order], stock: Stock, started: bool
) -> None:
    order = make_order(stock)
    if started:  # started and completed already: completing again is not allowed
        admin.post(f"/api/admin/orders/{order.id}/picking/start")
        admin.post(f"/api/admin/orders/{order.id}/picking/complete")

    assert_error(
        admin.post(f"/api/admin/orders/{order.id}/picking/complete"), 409, "invalid_transition"
    )
    assert len(_events(order, "picking.completed")) == int(started)


def test_complete_after_the_order_was_cancelled_is_409(
    admin: APIClient, make_order: Callable[..., Order], stock: Stock
) -> None:
    order = make_order(stock)
    admin.post(f"/api/admin/orders/{order.id}/picking/start")
    admin.post(f"/api/admin/orders/{order.id}/cancel", {"reason": "damaged"}, format="json")

    assert_error(
        admin.post(f"/api/admin/orders/{order.id}/picking/complete"), 409, "invalid_transition"
    )
    assert _events(order, "picking.completed") == []


@pytest.mark.parametrize("step", ["start", "complete"])
def test_picking_of_an_unknown_order_is_404(admin: APIClient, db: None, step: str) -> None:
    assert_error(admin.post(f"/api/admin/orders/{MISSING}/picking/{step}"), 404, "not_found")


@pytest.mark.parametrize("method", ["get", "put", "delete"])
def test_picking_endpoints_take_only_post(
    admin: APIClient, make_order: Callable[..., Order], stock: Stock, method: str
) -> None:
    order = make_order(stock)

    response: Any = getattr(admin, method)(f"/api/admin/orders/{order.id}/picking/start")

    assert_error(response, 405, "method_not_allowed")
