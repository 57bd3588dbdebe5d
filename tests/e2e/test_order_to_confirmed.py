"""End to end: real server and worker processes, driven over HTTP and WebSocket."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect
from websockets.sync.connection import Connection

from lokaly_core.inventory.models import Stock
from lokaly_core.orders.models import Order
from tests.conftest import order_body, wait_until
from tests.factories import PASSWORD, ProductFactory, StockFactory, StoreFactory, UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def _login(stack, email: str) -> str:
    response = httpx.post(
        f"{stack.http}/api/auth/token", json={"email": email, "password": PASSWORD}
    )
    assert response.status_code == 200, response.text
    return response.json()["access"]


def _recv(ws: Connection, timeout: float = 10.0) -> dict[str, Any]:
    return json.loads(ws.recv(timeout=timeout))


def _watch(stack, order_id: str, token: str, since: int | None = None) -> ClientConnection:
    query = f"?token={token}" + (f"&since={since}" if since is not None else "")
    return connect(f"{stack.ws}/ws/orders/{order_id}/{query}", open_timeout=10)


def _close_code(stack, path: str) -> int | None:
    with connect(f"{stack.ws}{path}", open_timeout=10) as ws:
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=10)
        return ws.close_code


def test_customer_orders_and_watches_it_become_confirmed(live_stack) -> None:
    # given a stocked store and a registered customer
    stock = StockFactory.create(on_hand=10)
    customer = UserFactory.create()
    token = _login(live_stack, customer.email)
    headers = {"Authorization": f"Bearer {token}"}

    # when the customer orders over HTTP and watches the order on the socket
    response = httpx.post(
        f"{live_stack.http}/api/orders",
        headers=headers,
        json=order_body(stock.store_id, (stock.product_id, 2)),
    )
    assert response.status_code == 201, response.text
    order = response.json()
    assert (order["status"], order["status_version"]) == ("pending", 1)
    with _watch(live_stack, order["id"], token, since=1) as ws:
        snapshot = _recv(ws)
        assert snapshot["type"] == "order.snapshot"
        assert snapshot["order"]["id"] == order["id"]
        seen = [snapshot["order"]["status_version"]]
        if snapshot["order"]["status"] != "confirmed":
            change = _recv(ws)
            assert change["type"] == "order.status_changed"
            seen.append(change["status_version"])
        else:  # confirmed before the socket opened: since=1 replays version 2
            change = _recv(ws)
        # then the change is confirmed, version 2, and nothing repeats before the pong
        assert change == {
            "type": "order.status_changed",
            "order_id": order["id"],
            "status": "confirmed",
            "previous_status": "pending",
            "status_version": 2,
            "occurred_at": change["occurred_at"],
            "reason": None,
        }
        ws.send(json.dumps({"type": "ping"}))
        assert _recv(ws) == {"type": "pong"}

    stock.refresh_from_db()
    assert (stock.on_hand, stock.reserved) == (10, 2)


def test_watcher_sees_cancellation_live_in_version_order(live_stack) -> None:
    stock = StockFactory.create(on_hand=5)
    customer = UserFactory.create()
    token = _login(live_stack, customer.email)
    headers = {"Authorization": f"Bearer {token}"}
    order = httpx.post(
        f"{live_stack.http}/api/orders",
        headers=headers,
        json=order_body(stock.store_id, (stock.product_id, 1)),
    ).json()
    wait_until(lambda: Order.objects.get(pk=order["id"]).status == "confirmed")

    with _watch(live_stack, order["id"], token) as ws:
        assert _recv(ws)["order"]["status_version"] == 2
        response = httpx.post(
            f"{live_stack.http}/api/orders/{order['id']}/cancel",
            headers=headers,
            json={"reason": "changed my mind"},
        )
        assert response.status_code == 200
        change = _recv(ws)

    assert (change["status"], change["previous_status"], change["status_version"]) == (
        "cancelled",
        "confirmed",
        3,
    )
    assert change["reason"] == "changed my mind"
    wait_until(lambda: Stock.objects.get(pk=stock.pk).reserved == 0)


def test_socket_refuses_strangers_with_the_contract_close_codes(live_stack) -> None:
    stock = StockFactory.create(on_hand=5)
    owner, stranger = UserFactory.create(), UserFactory.create()
    owner_token = _login(live_stack, owner.email)
    order = httpx.post(
        f"{live_stack.http}/api/orders",
        headers={"Authorization": f"Bearer {owner_token}"},
        json=order_body(stock.store_id, (stock.product_id, 1)),
    ).json()
    stranger_token = _login(live_stack, stranger.email)
    missing = "00000000-0000-4000-8000-000000000000"

    assert _close_code(live_stack, f"/ws/orders/{order['id']}/") == 4401
    assert _close_code(live_stack, f"/ws/orders/{order['id']}/?token=not-a-jwt") == 4401
    assert _close_code(live_stack, f"/ws/orders/{order['id']}/?token={stranger_token}") == 4403
    assert _close_code(live_stack, f"/ws/orders/{missing}/?token={owner_token}") == 4404
    assert _close_code(live_stack, f"/ws/orders/{order['id']}/?token={owner_token}&since=x") == 4400
    assert _close_code(live_stack, "/ws/nowhere/") == 4404


def test_token_in_authorization_header_is_accepted(live_stack) -> None:
    stock = StockFactory.create(on_hand=5)
    customer = UserFactory.create()
    token = _login(live_stack, customer.email)
    order = httpx.post(
        f"{live_stack.http}/api/orders",
        headers={"Authorization": f"Bearer {token}"},
        json=order_body(stock.store_id, (stock.product_id, 1)),
    ).json()

    with connect(
        f"{live_stack.ws}/ws/orders/{order['id']}/",
        additional_headers={"Authorization": f"Bearer {token}"},
        open_timeout=10,
    ) as ws:
        assert _recv(ws)["type"] == "order.snapshot"


def test_fifty_concurrent_orders_for_ten_units_confirm_exactly_ten(live_stack) -> None:
    # given 10 units and 50 customers
    store = StoreFactory.create()
    product = ProductFactory.create()
    stock = StockFactory.create(store=store, product=product, on_hand=10)
    customers = [UserFactory.create() for _ in range(50)]
    tokens = [_login(live_stack, c.email) for c in customers]

    # when all 50 order one unit at the same time (two workers reserve)
    def place(token: str) -> httpx.Response:
        return httpx.post(
            f"{live_stack.http}/api/orders",
            timeout=30,
            headers={"Authorization": f"Bearer {token}"},
            json=order_body(store.id, (product.id, 1)),
        )

    with ThreadPoolExecutor(max_workers=50) as pool:
        responses = list(pool.map(place, tokens))
    assert [r.status_code for r in responses] == [201] * 50
    ids = [r.json()["id"] for r in responses]

    # then every order settles, exactly 10 confirmed, and stock is exact
    def settled() -> bool:
        return not Order.objects.filter(pk__in=ids, status="pending").exists()

    wait_until(settled, timeout=60)
    outcome = sorted(Order.objects.filter(pk__in=ids).values_list("status", "cancel_reason"))
    assert outcome.count(("confirmed", None)) == 10
    assert outcome.count(("cancelled", "out_of_stock")) == 40
    stock.refresh_from_db()
    assert (stock.on_hand, stock.reserved) == (10, 10)
