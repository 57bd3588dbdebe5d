"""End to end: staff pause a store over the admin API, a customer's order is refused with
409 store_closed, staff resume it, and the same order goes through to ``confirmed``.

Real processes: the public server, the admin server and two workers, on the test database.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from lokaly_core.accounts.models import Role
from lokaly_core.orders.models import Order
from tests.conftest import order_body, wait_until
from tests.factories import PASSWORD, StockFactory, UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def _login(base: str, path: str, email: str) -> dict[str, str]:
    response = httpx.post(f"{base}{path}", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access']}"}


def test_a_paused_store_refuses_orders_until_staff_resume_it(
    live_stack: Any, live_admin: Any
) -> None:
    # given a stocked store, a customer and a member of staff, each logged in
    stock = StockFactory.create(on_hand=10)
    customer = _login(live_stack.http, "/api/auth/token", UserFactory.create().email)
    staff = _login(
        live_admin.http, "/api/admin/auth/token", UserFactory.create(role=Role.ADMIN).email
    )
    store_url = f"{live_admin.http}/api/admin/stores/{stock.store_id}"
    body = order_body(stock.store_id, (stock.product_id, 2))

    # when staff pause the store
    paused = httpx.patch(store_url, headers=staff, json={"accepting_orders": False})
    assert paused.status_code == 200, paused.text
    assert (paused.json()["accepting_orders"], paused.json()["is_open"]) == (False, False)

    # then the public store says so and the customer's order is refused, nothing written
    stores = httpx.get(f"{live_stack.http}/api/stores", headers=customer).json()["results"]
    assert [s["is_open"] for s in stores if s["id"] == str(stock.store_id)] == [False]
    refused = httpx.post(
        f"{live_stack.http}/api/orders", headers={**customer, "Idempotency-Key": "e2e-1"}, json=body
    )
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"]["code"] == "store_closed"
    assert refused.json()["error"]["details"] == {"next_opening_at": None}
    assert not Order.objects.exists()

    # when staff resume it and the customer retries with the same key
    resumed = httpx.patch(store_url, headers=staff, json={"accepting_orders": True})
    assert resumed.status_code == 200, resumed.text
    placed = httpx.post(
        f"{live_stack.http}/api/orders", headers={**customer, "Idempotency-Key": "e2e-1"}, json=body
    )

    # then the order is placed and the worker confirms it
    assert placed.status_code == 201, placed.text
    order_url = f"{live_stack.http}/api/orders/{placed.json()['id']}"
    confirmed = wait_until(
        lambda: (o := httpx.get(order_url, headers=customer).json())["status"] == "confirmed" and o,
        timeout=30,
    )
    assert confirmed["status_version"] == 2
    assert Order.objects.count() == 1
    stock.refresh_from_db()
    assert (stock.on_hand, stock.reserved) == (10, 2)
