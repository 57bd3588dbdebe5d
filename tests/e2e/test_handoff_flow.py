"""End to end (v1.1, proof of delivery): an order at a store that requires a hand-off code.

Real processes: the public server, the admin server and the worker, on the test database.
The customer reads the code from the socket's snapshot, as the app does at the door.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from lokaly_core.accounts.models import Role
from lokaly_core.delivery.models import CourierState, Delivery
from lokaly_core.orders.models import Order
from tests.conftest import order_body, wait_until
from tests.e2e.test_delivery_flow import Client, _delivery_for
from tests.factories import StockFactory, UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def _snapshot(url: str) -> dict[str, Any]:
    with connect(url, open_timeout=10) as ws:
        message = json.loads(ws.recv(timeout=10))
    assert message["type"] == "order.snapshot"
    return message["order"]


def _refusal(courier: Client, delivery_id: str, code: str | None) -> httpx.Response:
    return httpx.post(
        f"{courier.base}/api/courier/deliveries/{delivery_id}/complete",
        json={} if code is None else {"handoff_code": code},
        headers={"Authorization": f"Bearer {courier.token}"},
        timeout=10,
    )


def _to_out_for_delivery(live_stack: Any, live_admin: Any) -> tuple[Client, Client, dict, dict]:
    """A customer's order at a store requiring a code, confirmed and assigned by the
    worker, picked by staff and picked up by the courier: (customer, courier, order,
    delivery)."""
    stock = StockFactory.create(
        on_hand=10, store__lat=52.3745, store__lng=4.8979, store__requires_handoff_code=True
    )
    customer = Client(live_stack.http, "/api/auth/token", UserFactory.create().email)
    courier_user = UserFactory.create(role=Role.COURIER)
    courier = Client(live_stack.http, "/api/auth/token", courier_user.email)
    admin = Client(
        live_admin.http, "/api/admin/auth/token", UserFactory.create(role=Role.ADMIN).email
    )
    courier.call("POST", "/api/courier/location", {"lat": 52.3731, "lng": 4.8922}, expect=204)
    courier.call("POST", "/api/courier/shift", {"online": True})
    order = customer.call(
        "POST", "/api/orders", order_body(stock.store_id, (stock.product_id, 1)), expect=201
    )
    delivery = _delivery_for(courier, order["id"])
    wait_until(lambda: Order.objects.get(pk=order["id"]).status == "confirmed")
    admin.call("POST", f"/api/admin/orders/{order['id']}/picking/start")
    wait_until(lambda: Order.objects.get(pk=order["id"]).status == "picking")
    before = customer.call("GET", f"/api/orders/{order['id']}")
    assert "handoff_code" not in before
    admin.call("POST", f"/api/admin/orders/{order['id']}/picking/complete")
    wait_until(lambda: Order.objects.get(pk=order["id"]).status == "ready")
    picked = courier.call("POST", f"/api/courier/deliveries/{delivery['id']}/pickup")
    assert picked["handoff_code_required"] is True
    return customer, courier, order, picked


def test_the_customer_reads_the_code_and_only_the_right_code_delivers(
    live_stack: Any, live_admin: Any
) -> None:
    # given an order out for delivery from a store that requires a hand-off code
    customer, courier, order, delivery = _to_out_for_delivery(live_stack, live_admin)
    ws_url = f"{live_stack.ws}/ws/orders/{order['id']}/"

    # when the customer opens the order's socket (and the courier too)
    mine = _snapshot(f"{ws_url}?token={customer.token}")
    couriers = _snapshot(f"{ws_url}?token={courier.token}")

    # then the customer's snapshot carries the code, the courier's does not
    code = mine["handoff_code"]
    assert mine["status"] == "out_for_delivery"
    assert len(code) == 4 and code.isdigit()
    assert code == Delivery.objects.get(pk=delivery["id"]).handoff_code
    assert "handoff_code" not in couriers
    assert customer.call("GET", f"/api/orders/{order['id']}")["handoff_code"] == code

    with connect(f"{ws_url}?token={customer.token}&since=5", open_timeout=10) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "order.snapshot"
        # a wrong code is refused with the attempts left; nothing changes
        wrong = "0000" if code != "0000" else "1111"
        refused = _refusal(courier, delivery["id"], wrong)
        assert refused.status_code == 409, refused.text
        assert refused.json()["error"]["code"] == "invalid_handoff_code"
        assert refused.json()["error"]["details"] == {"attempts_left": 4}
        assert Order.objects.get(pk=order["id"]).status == "out_for_delivery"

        # the right code delivers, and the customer's socket sees it
        done = courier.call(
            "POST", f"/api/courier/deliveries/{delivery['id']}/complete", {"handoff_code": code}
        )
        assert done["status"] == "delivered"
        deadline = time.monotonic() + 20
        changes: list[dict[str, Any]] = []
        while not changes:
            message = json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if message["type"] == "order.status_changed":
                changes.append(message)

    assert [(c["status_version"], c["status"]) for c in changes] == [(6, "delivered")]
    final = customer.call("GET", f"/api/orders/{order['id']}")
    assert final["status"] == "delivered" and "handoff_code" not in final
    courier_id = Delivery.objects.get(pk=delivery["id"]).courier_id
    assert CourierState.objects.get(pk=courier_id).current_delivery_id is None


def test_a_locked_delivery_is_completed_by_an_admin(live_stack: Any, live_admin: Any) -> None:
    # given a delivery locked after five wrong codes
    customer, courier, order, delivery = _to_out_for_delivery(live_stack, live_admin)
    code = Delivery.objects.get(pk=delivery["id"]).handoff_code
    assert code is not None
    wrong = "0000" if code != "0000" else "1111"
    lefts = [
        _refusal(courier, delivery["id"], wrong).json()["error"]["details"]["attempts_left"]
        for _ in range(5)
    ]
    locked = _refusal(courier, delivery["id"], code)
    assert lefts == [4, 3, 2, 1, 0]
    assert (locked.status_code, locked.json()["error"]["code"]) == (409, "handoff_locked")

    # when an admin completes it
    staff = UserFactory.create(role=Role.ADMIN)
    admin = Client(live_admin.http, "/api/admin/auth/token", staff.email)
    done = admin.call(
        "POST", f"/api/admin/orders/{order['id']}/delivery/complete", {"reason": "ID checked"}
    )

    # then it is delivered, audited, and the customer sees it
    assert done["status"] == "delivered"
    detail = admin.call("GET", f"/api/admin/orders/{order['id']}")
    assert detail["history"][-1]["reason"] == "ID checked"
    assert detail["history"][-1]["actor"]["id"] == str(staff.id)
    assert customer.call("GET", f"/api/orders/{order['id']}")["status"] == "delivered"
    wait_until(
        lambda: "delivery.completed_by_admin"
        in {e["type"] for e in admin.call("GET", f"/api/admin/orders/{order['id']}")["events"]
            if e["published_at"]},
        timeout=20,
    )
