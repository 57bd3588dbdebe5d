"""End to end: an admin drives an order through picking; the customer's socket sees each step.

Real processes: the public server, the admin server and two workers, on the test database.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect
from websockets.sync.connection import Connection

from lokaly_core.accounts.models import Role
from lokaly_core.orders.models import Order
from tests.conftest import order_body, wait_until
from tests.factories import PASSWORD, StockFactory, UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def _login(base: str, path: str, email: str) -> str:
    response = httpx.post(f"{base}{path}", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return response.json()["access"]


def _recv(ws: Connection, timeout: float = 15.0) -> dict[str, Any]:
    return json.loads(ws.recv(timeout=timeout))


def _changes_until(ws: Connection, version: int) -> list[dict[str, Any]]:
    """Status changes received up to ``version``, then a ping to flush any repeat."""
    changes: list[dict[str, Any]] = []
    while not changes or changes[-1]["status_version"] < version:
        message = _recv(ws)
        assert message["type"] == "order.status_changed", message
        changes.append(message)
    ws.send(json.dumps({"type": "ping"}))
    while (message := _recv(ws))["type"] != "pong":
        changes.append(message)  # anything before the pong is a repeat or a gap filler
    return changes


def test_admin_picks_an_order_and_the_customer_watches_it_become_ready(
    live_stack: Any, live_admin: Any
) -> None:
    # given a customer with a confirmed order, watching it from version 1
    stock = StockFactory.create(on_hand=10)
    customer = UserFactory.create()
    staff = UserFactory.create(role=Role.ADMIN)
    token = _login(live_stack.http, "/api/auth/token", customer.email)
    order = httpx.post(
        f"{live_stack.http}/api/orders",
        headers={"Authorization": f"Bearer {token}"},
        json=order_body(stock.store_id, (stock.product_id, 2)),
    ).json()
    url = f"{live_stack.ws}/ws/orders/{order['id']}/?token={token}&since=1"
    with connect(url, open_timeout=10) as ws:
        snapshot = _recv(ws)
        assert snapshot["type"] == "order.snapshot"
        assert snapshot["order"]["status_version"] in {1, 2}
        confirmed = _changes_until(ws, 2)

        # when an admin logs in on the admin server and picks the order
        admin_token = _login(live_admin.http, "/api/admin/auth/token", staff.email)
        admin = {"Authorization": f"Bearer {admin_token}"}
        base = f"{live_admin.http}/api/admin/orders/{order['id']}/picking"
        started = httpx.post(f"{base}/start", headers=admin)
        assert started.status_code == 200, started.text
        assert started.json()["status"] == "started"
        picking = _changes_until(ws, 3)
        completed = httpx.post(f"{base}/complete", headers=admin)
        assert completed.status_code == 200, completed.text
        assert completed.json()["status"] == "completed"
        ready = _changes_until(ws, 4)

    # then the socket saw versions 2, 3, 4 in order, no gaps, no repeats
    changes = confirmed + picking + ready
    assert [(c["status_version"], c["status"], c["previous_status"]) for c in changes] == [
        (2, "confirmed", "pending"),
        (3, "picking", "confirmed"),
        (4, "ready", "picking"),
    ]
    assert all(c["order_id"] == order["id"] for c in changes)
    wait_until(lambda: Order.objects.get(pk=order["id"]).status == "ready")
    detail = httpx.get(f"{live_admin.http}/api/admin/orders/{order['id']}", headers=admin).json()
    assert detail["picking"]["status"] == "completed"
    assert [h["status"] for h in detail["history"]] == ["pending", "confirmed", "picking", "ready"]
    types = [e["type"] for e in detail["events"]]
    assert types.index("picking.started") < types.index("picking.completed")


def test_tokens_do_not_cross_between_the_live_servers(live_stack: Any, live_admin: Any) -> None:
    customer = UserFactory.create()
    staff = UserFactory.create(role=Role.SUPER_ADMIN)
    public_token = _login(live_stack.http, "/api/auth/token", customer.email)
    admin_token = _login(live_admin.http, "/api/admin/auth/token", staff.email)

    on_admin = httpx.get(
        f"{live_admin.http}/api/admin/orders", headers={"Authorization": f"Bearer {public_token}"}
    )
    on_public = httpx.get(
        f"{live_stack.http}/api/me", headers={"Authorization": f"Bearer {admin_token}"}
    )

    assert (on_admin.status_code, on_admin.json()["error"]["code"]) == (401, "token_invalid")
    assert (on_public.status_code, on_public.json()["error"]["code"]) == (401, "token_invalid")
    # staff cannot log in on the public API, customers not on the admin API
    assert (
        httpx.post(
            f"{live_stack.http}/api/auth/token", json={"email": staff.email, "password": PASSWORD}
        ).status_code
        == 401
    )
    assert (
        httpx.post(
            f"{live_admin.http}/api/admin/auth/token",
            json={"email": customer.email, "password": PASSWORD},
        ).status_code
        == 401
    )
    # and an admin token cannot open a customer's socket
    with connect(f"{live_stack.ws}/ws/orders/{customer.id}/?token={admin_token}") as ws:
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=10)
        assert ws.close_code == 4401
