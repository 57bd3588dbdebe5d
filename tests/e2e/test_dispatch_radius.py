"""End to end, v1.1 "Couriers: dispatch radius and drop-outs": real public server and
workers on the test database, every step through the courier and customer APIs."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from lokaly_core.accounts.models import Role
from lokaly_core.delivery.models import DispatchTask
from lokaly_core.orders.models import Order
from tests.conftest import order_body, wait_until
from tests.e2e.test_delivery_flow import Client
from tests.factories import StockFactory, UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

BEIJING = {"lat": 39.9042, "lng": 116.4074}  # 7,800 km from the store


def _courier(live_stack: Any, location: dict[str, float]) -> Client:
    """A courier who reports ``location`` and comes online, as the app does."""
    client = Client(live_stack.http, "/api/auth/token", UserFactory.create(role=Role.COURIER).email)
    client.call("POST", "/api/courier/location", location, expect=204)
    assert client.call("POST", "/api/courier/shift", {"online": True}) == {"online": True}
    return client


def _deliveries(courier: Client) -> list[dict[str, Any]]:
    return courier.call("GET", "/api/courier/deliveries")["results"]


def _retried(order_id: str) -> bool:
    """The order was tried at least twice (once on confirmation, once by the retry)."""
    task = DispatchTask.objects.filter(pk=uuid.UUID(order_id)).first()
    return task is not None and task.attempts >= 2


def test_a_far_courier_stays_idle_and_a_near_one_coming_online_gets_the_order(
    live_stack: Any,
) -> None:
    # given a store in Amsterdam and the only courier on shift in Beijing
    stock = StockFactory.create(on_hand=10, store__lat=52.37, store__lng=4.89)
    far = _courier(live_stack, BEIJING)
    customer = Client(live_stack.http, "/api/auth/token", UserFactory.create().email)

    # when a customer orders
    order = customer.call(
        "POST", "/api/orders", order_body(stock.store_id, (stock.product_id, 1)), expect=201
    )

    # then the order is confirmed and waits, tried again by the workers, the far courier idle
    wait_until(lambda: Order.objects.get(pk=order["id"]).status == "confirmed", timeout=20)
    wait_until(lambda: _retried(order["id"]), timeout=30, interval=0.1)
    assert _deliveries(far) == []

    # when a courier 1 km from the store reports a location and comes online
    near = _courier(live_stack, {"lat": 52.379, "lng": 4.89})

    # then they get the order, and the far one still has nothing
    [delivery] = wait_until(lambda: _deliveries(near), timeout=20, interval=0.1)
    assert (delivery["order_id"], delivery["status"]) == (order["id"], "assigned")
    assert _deliveries(far) == []
    wait_until(lambda: not DispatchTask.objects.filter(pk=order["id"]).exists(), timeout=10)


def test_a_courier_going_offline_before_pickup_hands_the_order_on(live_stack: Any) -> None:
    # given an order assigned to the only courier on shift
    stock = StockFactory.create(on_hand=10, store__lat=52.37, store__lng=4.89)
    first = _courier(live_stack, {"lat": 52.371, "lng": 4.89})
    customer = Client(live_stack.http, "/api/auth/token", UserFactory.create().email)
    order = customer.call(
        "POST", "/api/orders", order_body(stock.store_id, (stock.product_id, 1)), expect=201
    )
    [held] = wait_until(lambda: _deliveries(first), timeout=20, interval=0.1)
    assert held["order_id"] == order["id"]
    second = _courier(live_stack, {"lat": 52.38, "lng": 4.90})

    # when the first ends their shift
    assert first.call("POST", "/api/courier/shift", {"online": False}) == {"online": False}

    # then the second has the order at once and the first has nothing
    [delivery] = wait_until(lambda: _deliveries(second), timeout=20, interval=0.1)
    assert delivery["order_id"] == order["id"]
    assert _deliveries(first) == []
