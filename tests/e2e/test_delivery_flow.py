"""End to end: from the customer's order to the door, and dispatch under a race.

Real processes: the public server (two uvicorn processes), the admin server and two
workers, on the test database. Every step goes through an API, as the apps do it.
"""

from __future__ import annotations

import functools
import json
import time
import uuid
from collections import Counter
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect
from websockets.sync.connection import Connection

from lokaly_core.accounts.models import Role
from lokaly_core.delivery.models import CourierState, Delivery, DispatchTask
from lokaly_core.inventory.models import Stock
from lokaly_core.notifications.models import Notification
from lokaly_core.orders.models import Order
from tests.conftest import order_body, wait_until
from tests.factories import PASSWORD, StockFactory, UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


class Client:
    """One app user on one server: logs in, then calls with the bearer token."""

    def __init__(self, base: str, login_path: str, email: str) -> None:
        self.base = base
        response = httpx.post(f"{base}{login_path}", json={"email": email, "password": PASSWORD})
        assert response.status_code == 200, response.text
        self.token = response.json()["access"]

    def call(self, method: str, path: str, body: Any = None, expect: int = 200) -> Any:
        response = httpx.request(
            method,
            f"{self.base}{path}",
            json=body,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=10,
        )
        assert response.status_code == expect, (method, path, response.status_code, response.text)
        return response.json() if response.content else None


def _order_is_ready(order_id: str) -> bool:
    return Order.objects.get(pk=order_id).status == "ready"


def _messages_until_delivered(ws: Connection, deadline: float) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    while not any(m.get("status") == "delivered" for m in messages):
        messages.append(json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic()))))
    # A ping after the last change flushes anything still queued (a repeat would show).
    ws.send(json.dumps({"type": "ping"}))
    while (message := json.loads(ws.recv(timeout=10)))["type"] != "pong":
        messages.append(message)
    return messages


def _delivery_for(courier: Client, order_id: str) -> dict[str, Any]:
    def find() -> dict[str, Any] | None:
        rows = courier.call("GET", "/api/courier/deliveries")["results"]
        return next((d for d in rows if d["order_id"] == order_id), None)

    return wait_until(find, timeout=20, interval=0.1)


def test_an_order_travels_from_placement_to_delivered_and_the_customer_sees_every_step(
    live_stack: Any, live_admin: Any
) -> None:
    # given a store with 10 units, a customer, an admin and one courier on shift near it
    stock = StockFactory.create(on_hand=10, store__lat=52.3745, store__lng=4.8979)
    customer_user = UserFactory.create()
    courier_user = UserFactory.create(role=Role.COURIER)
    staff = UserFactory.create(role=Role.ADMIN)
    customer = Client(live_stack.http, "/api/auth/token", customer_user.email)
    courier = Client(live_stack.http, "/api/auth/token", courier_user.email)
    admin = Client(live_admin.http, "/api/admin/auth/token", staff.email)
    assert courier.call("POST", "/api/courier/shift", {"online": True}) == {"online": True}
    courier.call("POST", "/api/courier/location", {"lat": 52.3731, "lng": 4.8922}, expect=204)

    # when the customer orders 2 units and watches the order from version 1
    order = customer.call(
        "POST", "/api/orders", order_body(stock.store_id, (stock.product_id, 2)), expect=201
    )
    url = f"{live_stack.ws}/ws/orders/{order['id']}/?token={customer.token}&since=1"
    with connect(url, open_timeout=10) as ws:
        snapshot = json.loads(ws.recv(timeout=10))
        assert snapshot["type"] == "order.snapshot"
        # the worker confirms it and assigns the courier; staff pick it
        delivery = _delivery_for(courier, order["id"])
        assert delivery["status"] == "assigned"
        wait_until(lambda: Order.objects.get(pk=order["id"]).status == "confirmed")
        picking = f"/api/admin/orders/{order['id']}/picking"
        admin.call("POST", f"{picking}/start")
        wait_until(lambda: Order.objects.get(pk=order["id"]).status == "picking")
        admin.call("POST", f"{picking}/complete")
        wait_until(lambda: Order.objects.get(pk=order["id"]).status == "ready")
        # the courier rides to the store, picks the order up and hands it over
        courier.call("POST", "/api/courier/location", {"lat": 52.3740, "lng": 4.8970}, expect=204)
        picked = courier.call("POST", f"/api/courier/deliveries/{delivery['id']}/pickup")
        assert picked["status"] == "picked_up"
        courier.call("POST", "/api/courier/location", {"lat": 52.3710, "lng": 4.8910}, expect=204)
        done = courier.call("POST", f"/api/courier/deliveries/{delivery['id']}/complete")
        assert done["status"] == "delivered"
        messages = _messages_until_delivered(ws, time.monotonic() + 20)

    # then the socket showed versions 2..6 once each, in order, and the courier moving
    changes = [m for m in messages if m["type"] == "order.status_changed"]
    assert [(c["status_version"], c["status"]) for c in changes] == [
        (2, "confirmed"),
        (3, "picking"),
        (4, "ready"),
        (5, "out_for_delivery"),
        (6, "delivered"),
    ]
    locations = [m for m in messages if m["type"] == "courier.location"]
    assert {(m["lat"], m["lng"]) for m in locations} >= {(52.3740, 4.8970), (52.3710, 4.8910)}
    assert all(m["order_id"] == order["id"] for m in locations)

    # stock: the 2 units left the store and nothing stays reserved
    level = Stock.objects.get(pk=stock.pk)
    assert (level.on_hand, level.reserved) == (8, 0)
    # the courier is free again; the order shows its delivery
    assert CourierState.objects.get(pk=courier_user.pk).current_delivery_id is None
    final = customer.call("GET", f"/api/orders/{order['id']}")
    assert final["status"] == "delivered"
    assert final["delivery"]["status"] == "delivered"
    assert final["delivery"]["courier"] == {"id": str(courier_user.id), "name": courier_user.name}
    # notifications: exactly one per meaningful change, for the right people
    wait_until(lambda: Notification.objects.filter(order_id=order["id"]).count() == 4)
    assert sorted(
        Notification.objects.filter(order_id=order["id"]).values_list("user_id", "type")
    ) == sorted(
        [
            (customer_user.id, "order.confirmed"),
            (customer_user.id, "order.picked_up"),
            (customer_user.id, "order.delivered"),
            (courier_user.id, "delivery.assigned"),
        ]
    )
    listed = customer.call("GET", "/api/notifications")["results"]
    assert {n["type"] for n in listed} == {"order.confirmed", "order.picked_up", "order.delivered"}


def test_twenty_orders_race_for_five_couriers_across_two_workers(
    live_stack: Any, live_admin: Any
) -> None:
    # given 5 couriers on shift and 20 customers' orders placed at once
    stock = StockFactory.create(on_hand=1000)
    staff = UserFactory.create(role=Role.ADMIN)
    admin = Client(live_admin.http, "/api/admin/auth/token", staff.email)
    couriers = {}
    for i in range(5):
        user = UserFactory.create(role=Role.COURIER)
        couriers[str(user.id)] = client = Client(live_stack.http, "/api/auth/token", user.email)
        client.call("POST", "/api/courier/location", {"lat": 52.37 + i / 1000, "lng": 4.89}, 204)
        client.call("POST", "/api/courier/shift", {"online": True})
    customer = Client(live_stack.http, "/api/auth/token", UserFactory.create().email)
    body = order_body(stock.store_id, (stock.product_id, 1))
    order_ids = [customer.call("POST", "/api/orders", body, expect=201)["id"] for _ in range(20)]

    # when the two workers have confirmed them all
    wait_until(
        lambda: Order.objects.filter(pk__in=order_ids, status="confirmed").count() == 20,
        timeout=30,
    )
    wait_until(
        lambda: DispatchTask.objects.filter(order_id__in=order_ids).count() == 15, timeout=20
    )

    # then 5 are assigned, each courier once, and 15 wait
    active = Delivery.objects.filter(order_id__in=order_ids, status__in=["assigned", "picked_up"])
    assert active.count() == 5
    assert (
        sorted(Counter(str(c) for c in active.values_list("courier_id", flat=True)).values())
        == [1] * 5
    )

    # when each courier delivers what they hold, again and again, the rest follow
    delivered: set[str] = set()
    deadline = time.monotonic() + 120
    while len(delivered) < 20:
        assert time.monotonic() < deadline, f"only {len(delivered)} of 20 delivered"
        progressed = False
        for client in couriers.values():
            for row in client.call("GET", "/api/courier/deliveries")["results"]:
                order_id = row["order_id"]
                picking = f"/api/admin/orders/{order_id}/picking"
                admin.call("POST", f"{picking}/start")
                admin.call("POST", f"{picking}/complete")
                wait_until(functools.partial(_order_is_ready, order_id))
                client.call("POST", f"/api/courier/deliveries/{row['id']}/pickup")
                client.call("POST", f"/api/courier/deliveries/{row['id']}/complete")
                delivered.add(order_id)
                progressed = True
        if not progressed:
            time.sleep(0.1)

    # then every order was delivered once, and no courier ever held two at a time
    assert Order.objects.filter(pk__in=order_ids, status="delivered").count() == 20
    rows = Delivery.objects.filter(order_id__in=order_ids)
    assert rows.filter(status="delivered").count() == 20
    assert rows.exclude(status="delivered").count() == 0
    assert not DispatchTask.objects.filter(order_id__in=order_ids).exists()
    for courier_id in couriers:
        spans = sorted(
            rows.filter(courier_id=uuid.UUID(courier_id)).values_list("assigned_at", "delivered_at")
        )
        for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
            assert end is not None
            assert end <= start, f"courier {courier_id} held two deliveries at once"
    level = Stock.objects.get(pk=stock.pk)
    assert (level.on_hand, level.reserved) == (980, 0)
