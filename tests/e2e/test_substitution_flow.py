"""End to end (v1.1, "Picking: short picks and substitutions").

Real processes: the public server, the admin server (two: one with the default
``SUBSTITUTION_TIMEOUT_SECONDS``, one with 2 seconds for the expiry) and two workers, on
the test database. A customer orders 3 milk and 1 bread; staff find 1 milk and propose 2
oat drinks instead of the 2 missing; the customer accepts, rejects, or lets it expire.
Every stock figure is checked before and after the courier's pickup, the totals exactly,
and the customer's socket messages exactly and in order.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.db import connection
from websockets.sync.client import connect
from websockets.sync.connection import Connection

from lokaly_core.accounts.models import Role
from lokaly_core.inventory.models import Stock
from lokaly_core.orders.models import Order
from lokaly_core.orders.selectors import order_events
from lokaly_core.outbox.models import OutboxEvent
from lokaly_core.picking.models import PickingLine
from tests.conftest import order_body, wait_until
from tests.e2e.test_delivery_flow import Client, _delivery_for
from tests.factories import StockFactory, UserFactory
from tests.live import free_port, spawn, stop, wait_ready

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

MILK, BREAD, OAT = 129, 289, 189  # unit prices
FEE = 199
QUICK_TIMEOUT_S = 2


@dataclass
class Shop:
    store_id: str
    milk: str
    bread: str
    oat: str


@dataclass
class Actors:
    customer: Client
    courier: Client
    admin: Client


@pytest.fixture(scope="module")
def live_admin_quick(live_env: dict[str, str]) -> Iterator[str]:
    """A second admin server whose proposals expire after 2 seconds."""
    port = free_port()
    logs: dict[str, Path] = {}
    env = {
        **live_env,
        "DJANGO_SETTINGS_MODULE": "lokaly_admin.settings.test",
        "SUBSTITUTION_TIMEOUT_SECONDS": str(QUICK_TIMEOUT_S),
    }
    args = ["manage_admin.py", "serve", "--no-migrate", "--port", str(port), "--workers", "1"]
    process = spawn("admin-quick", args, env, logs)
    try:
        wait_ready(f"http://127.0.0.1:{port}", {"admin-quick": process}, logs)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(process)


def _shop(*, oat: int = 4) -> Shop:
    milk = StockFactory.create(
        on_hand=10,
        store__lat=52.3745,
        store__lng=4.8979,
        product__name="Milk 1L",
        product__price_cents=MILK,
    )
    bread = StockFactory.create(
        store=milk.store, on_hand=5, product__name="Bread", product__price_cents=BREAD
    )
    oat_row = StockFactory.create(
        store=milk.store, on_hand=oat, product__name="Oat drink 1L", product__price_cents=OAT
    )
    return Shop(
        str(milk.store_id), str(milk.product_id), str(bread.product_id), str(oat_row.product_id)
    )


def _actors(live_stack: Any, admin_base: str) -> Actors:
    customer = Client(live_stack.http, "/api/auth/token", UserFactory.create().email)
    courier = Client(
        live_stack.http, "/api/auth/token", UserFactory.create(role=Role.COURIER).email
    )
    admin = Client(admin_base, "/api/admin/auth/token", UserFactory.create(role=Role.ADMIN).email)
    courier.call("POST", "/api/courier/location", {"lat": 52.3731, "lng": 4.8922}, expect=204)
    courier.call("POST", "/api/courier/shift", {"online": True})
    return Actors(customer, courier, admin)


def _figures(shop: Shop) -> dict[str, tuple[int, int, int]]:
    """(on_hand, reserved, available) of each product of the shop."""
    rows = Stock.objects.filter(store_id=shop.store_id)
    by_product = {str(r.product_id): (r.on_hand, r.reserved, r.available) for r in rows}
    return {name: by_product[getattr(shop, name)] for name in ("milk", "bread", "oat")}


def _status(order_id: str) -> str:
    return Order.objects.get(pk=order_id).status


def _picking_order(shop: Shop, actors: Actors) -> tuple[dict[str, Any], dict[str, Any]]:
    """The customer's order (3 milk, 1 bread), confirmed, assigned, its picking started:
    (the order as placed, its delivery)."""
    order = actors.customer.call(
        "POST",
        "/api/orders",
        order_body(shop.store_id, (shop.milk, 3), (shop.bread, 1)),
        expect=201,
    )
    delivery = _delivery_for(actors.courier, order["id"])
    wait_until(lambda: _status(order["id"]) == "confirmed")
    actors.admin.call("POST", f"/api/admin/orders/{order['id']}/picking/start")
    wait_until(lambda: _status(order["id"]) == "picking")
    return order, delivery


def _watch(live_stack: Any, actors: Actors, order_id: str) -> Connection:
    ws = connect(
        f"{live_stack.ws}/ws/orders/{order_id}/?token={actors.customer.token}", open_timeout=10
    )
    snapshot = _recv(ws)
    assert snapshot["type"] == "order.snapshot"
    assert snapshot["order"]["status"] == "picking"
    # the assigned courier's last location follows the snapshot (v1 behaviour)
    assert _recv(ws)["type"] == "courier.location"
    return ws


def _recv(ws: Connection, timeout: float = 20.0) -> dict[str, Any]:
    return json.loads(ws.recv(timeout=timeout))


def _messages_until(ws: Connection, done: Any) -> list[dict[str, Any]]:
    """What the socket sends until ``done(message)``, then a ping to flush any repeat."""
    messages: list[dict[str, Any]] = []
    while not messages or not done(messages[-1]):
        messages.append(_recv(ws))
    ws.send(json.dumps({"type": "ping"}))
    while (message := _recv(ws))["type"] != "pong":
        messages.append(message)
    return messages


def _is_status(status: str) -> Any:
    return lambda m: m["type"] == "order.status_changed" and m["status"] == status


def _propose(actors: Actors, order: dict[str, Any], shop: Shop) -> dict[str, Any]:
    return actors.admin.call(
        "POST",
        f"/api/admin/orders/{order['id']}/picking/lines/{shop.milk}",
        {"picked_quantity": 1, "substitute": {"product_id": shop.oat, "quantity": 2}},
    )


def _proposed_message(order: dict[str, Any], shop: Shop, expires_at: str) -> dict[str, Any]:
    return {
        "type": "order.substitution_proposed",
        "order_id": order["id"],
        "product_id": shop.milk,
        "substitute": {
            "product_id": shop.oat,
            "name": "Oat drink 1L",
            "quantity": 2,
            "unit_price_cents": OAT,
        },
        "expires_at": expires_at,
    }


def _item(product: str, name: str, quantity: int, picked: int, price: int, replaces=None):
    return {
        "product_id": product,
        "name": name,
        "quantity": quantity,
        "unit_price_cents": price,
        "line_total_cents": picked * price,
        "picked_quantity": picked,
        "substitute_for": replaces,
    }


def _pick_up(actors: Actors, delivery: dict[str, Any], order_id: str) -> dict[str, Any]:
    wait_until(lambda: _status(order_id) == "ready")
    picked = actors.courier.call("POST", f"/api/courier/deliveries/{delivery['id']}/pickup")
    wait_until(lambda: _status(order_id) == "out_for_delivery")
    return picked


def _event_types(order_id: str) -> list[str]:
    """The order's events in the order they were recorded (once all are published)."""
    wait_until(
        lambda: not OutboxEvent.objects.filter(aggregate_id=order_id, published_at=None).exists()
    )
    return [e["type"] for e in order_events(uuid.UUID(order_id))]


def test_a_short_pick_with_an_accepted_substitute(live_stack: Any, live_admin: Any) -> None:
    # given an order being picked, its customer watching
    shop = _shop()
    actors = _actors(live_stack, live_admin.http)
    order, delivery = _picking_order(shop, actors)
    assert _figures(shop) == {"milk": (10, 3, 7), "bread": (5, 1, 4), "oat": (4, 0, 4)}
    with _watch(live_stack, actors, order["id"]) as ws:
        # when staff find 1 milk of 3 and propose 2 oat drinks
        picking = _propose(actors, order, shop)
        # then the substitute's units are held for the order at once
        assert _figures(shop) == {"milk": (10, 3, 7), "bread": (5, 1, 4), "oat": (4, 2, 2)}
        milk_line, bread_line = picking["lines"]
        assert (milk_line["product_id"], milk_line["ordered_quantity"]) == (shop.milk, 3)
        assert milk_line["picked_quantity"] == 1
        expires_at = milk_line["substitute"]["expires_at"]
        assert milk_line["substitute"]["status"] == "proposed"
        assert (bread_line["picked_quantity"], bread_line["recorded_at"]) == (1, None)
        proposed = _recv(ws)
        assert proposed == _proposed_message(order, shop, expires_at)
        # and the customer accepts
        answered = actors.customer.call(
            "POST", f"/api/orders/{order['id']}/substitutions/{shop.milk}", {"accept": True}
        )
        assert answered["substitutions"] == [
            {
                "product_id": shop.milk,
                "substitute": proposed["substitute"],
                "status": "accepted",
                "expires_at": expires_at,
            }
        ]
        assert _figures(shop) == {"milk": (10, 3, 7), "bread": (5, 1, 4), "oat": (4, 2, 2)}
        actors.admin.call("POST", f"/api/admin/orders/{order['id']}/picking/complete")
        messages = _messages_until(ws, _is_status("ready"))

    # then the order is what was picked: 1 milk, 1 bread, 2 oat drinks for the milk
    items = [
        _item(shop.milk, "Milk 1L", 3, 1, MILK),
        _item(shop.bread, "Bread", 1, 1, BREAD),
        _item(shop.oat, "Oat drink 1L", 2, 2, OAT, replaces=shop.milk),
    ]
    subtotal = MILK + BREAD + 2 * OAT
    assert messages[0] == {
        "type": "order.amended",
        "order_id": order["id"],
        "items": items,
        "subtotal_cents": subtotal,
        "total_cents": subtotal + FEE,
    }
    assert [(m["type"], m.get("status"), m.get("status_version")) for m in messages] == [
        ("order.amended", None, None),
        ("order.status_changed", "ready", 4),
    ]
    read = actors.customer.call("GET", f"/api/orders/{order['id']}")
    assert (read["items"], read["subtotal_cents"], read["total_cents"]) == (
        items,
        subtotal,
        subtotal + FEE,
    )
    assert order["total_cents"] == 3 * MILK + BREAD + FEE
    # and the 2 milk not picked are back on the shelf; the oat drinks stay held
    assert _figures(shop) == {"milk": (10, 1, 9), "bread": (5, 1, 4), "oat": (4, 2, 2)}
    types = _event_types(order["id"])
    assert types.index("order.substitution_proposed") < types.index("order.substitution_answered")
    assert types.index("order.amended") < types.index("picking.completed")
    amended = OutboxEvent.objects.get(aggregate_id=order["id"], type="order.amended").payload
    assert (amended["previous_total_cents"], amended["total_cents"]) == (
        3 * MILK + BREAD + FEE,
        subtotal + FEE,
    )
    # and the pickup consumes exactly what was picked, which is what the courier carries
    bag = _pick_up(actors, delivery, order["id"])["items"]
    assert bag == [
        {"name": "Milk 1L", "quantity": 1},
        {"name": "Bread", "quantity": 1},
        {"name": "Oat drink 1L", "quantity": 2},
    ]
    assert _figures(shop) == {"milk": (9, 0, 9), "bread": (4, 0, 4), "oat": (2, 0, 2)}

    def notified() -> dict[str, str] | None:
        rows = actors.customer.call("GET", "/api/notifications")["results"]
        found = {n["type"]: n["body"] for n in rows}
        wanted = {"order.substitution_proposed", "order.amended"}
        return found if wanted <= set(found) else None

    kinds = wait_until(notified)
    assert "Oat drink 1L" in kinds["order.substitution_proposed"]
    assert "instead" in kinds["order.substitution_proposed"]
    assert f"{(subtotal + FEE) // 100}.{(subtotal + FEE) % 100:02d} EUR" in kinds["order.amended"]


def test_a_short_pick_with_a_rejected_substitute(live_stack: Any, live_admin: Any) -> None:
    shop = _shop()
    actors = _actors(live_stack, live_admin.http)
    order, delivery = _picking_order(shop, actors)
    with _watch(live_stack, actors, order["id"]) as ws:
        picking = _propose(actors, order, shop)
        expires_at = picking["lines"][0]["substitute"]["expires_at"]
        assert _recv(ws) == _proposed_message(order, shop, expires_at)
        assert _figures(shop)["oat"] == (4, 2, 2)

        # when the customer refuses the substitute
        answered = actors.customer.call(
            "POST", f"/api/orders/{order['id']}/substitutions/{shop.milk}", {"accept": False}
        )

        # then its units are released at once
        assert answered["substitutions"][0]["status"] == "rejected"
        assert _figures(shop) == {"milk": (10, 3, 7), "bread": (5, 1, 4), "oat": (4, 0, 4)}
        again = httpx.post(
            f"{live_stack.http}/api/orders/{order['id']}/substitutions/{shop.milk}",
            json={"accept": True},
            headers={"Authorization": f"Bearer {actors.customer.token}"},
        )
        assert (again.status_code, again.json()["error"]["code"]) == (409, "invalid_transition")
        actors.admin.call("POST", f"/api/admin/orders/{order['id']}/picking/complete")
        messages = _messages_until(ws, _is_status("ready"))

    items = [_item(shop.milk, "Milk 1L", 3, 1, MILK), _item(shop.bread, "Bread", 1, 1, BREAD)]
    assert messages == [
        {
            "type": "order.amended",
            "order_id": order["id"],
            "items": items,
            "subtotal_cents": MILK + BREAD,
            "total_cents": MILK + BREAD + FEE,
        },
        {**messages[1], "type": "order.status_changed", "status": "ready", "status_version": 4},
    ]
    assert _figures(shop) == {"milk": (10, 1, 9), "bread": (5, 1, 4), "oat": (4, 0, 4)}
    _pick_up(actors, delivery, order["id"])
    assert _figures(shop) == {"milk": (9, 0, 9), "bread": (4, 0, 4), "oat": (4, 0, 4)}
    assert actors.customer.call("GET", f"/api/orders/{order['id']}")["total_cents"] == (
        MILK + BREAD + FEE
    )


def test_a_short_pick_with_an_expired_substitute(
    live_stack: Any, live_admin: Any, live_admin_quick: str
) -> None:
    # given staff on the admin server whose proposals expire after 2 seconds
    shop = _shop()
    actors = _actors(live_stack, live_admin_quick)
    order, delivery = _picking_order(shop, actors)
    with _watch(live_stack, actors, order["id"]) as ws:
        picking = _propose(actors, order, shop)
        expires_at = picking["lines"][0]["substitute"]["expires_at"]
        assert _recv(ws) == _proposed_message(order, shop, expires_at)

        # when nobody answers: the worker expires it and releases its units
        def expired() -> bool:
            line = PickingLine.objects.get(order_id=order["id"], product_id=shop.milk)
            return line.substitution_status == "expired"

        wait_until(expired, timeout=QUICK_TIMEOUT_S + 10)
        assert _figures(shop) == {"milk": (10, 3, 7), "bread": (5, 1, 4), "oat": (4, 0, 4)}
        late = httpx.post(
            f"{live_stack.http}/api/orders/{order['id']}/substitutions/{shop.milk}",
            json={"accept": True},
            headers={"Authorization": f"Bearer {actors.customer.token}"},
        )
        assert (late.status_code, late.json()["error"]["code"]) == (409, "invalid_transition")
        assert _figures(shop)["oat"] == (4, 0, 4)
        answered = OutboxEvent.objects.get(
            aggregate_id=order["id"], type="order.substitution_answered"
        ).payload
        assert (answered["status"], answered["accepted"], answered["released_quantity"]) == (
            "expired",
            False,
            2,
        )
        actors.admin.call("POST", f"/api/admin/orders/{order['id']}/picking/complete")
        messages = _messages_until(ws, _is_status("ready"))

    assert [m["type"] for m in messages] == ["order.amended", "order.status_changed"]
    assert messages[0]["total_cents"] == MILK + BREAD + FEE
    assert messages[0]["items"] == [
        _item(shop.milk, "Milk 1L", 3, 1, MILK),
        _item(shop.bread, "Bread", 1, 1, BREAD),
    ]
    assert _figures(shop) == {"milk": (10, 1, 9), "bread": (5, 1, 4), "oat": (4, 0, 4)}
    _pick_up(actors, delivery, order["id"])
    assert _figures(shop) == {"milk": (9, 0, 9), "bread": (4, 0, 4), "oat": (4, 0, 4)}
    read = actors.customer.call("GET", f"/api/orders/{order['id']}")
    assert read["substitutions"][0]["status"] == "expired"


def test_nothing_picked_cancels_the_order(live_stack: Any, live_admin: Any) -> None:
    shop = _shop()
    actors = _actors(live_stack, live_admin.http)
    order, _delivery = _picking_order(shop, actors)
    with _watch(live_stack, actors, order["id"]) as ws:
        base = f"/api/admin/orders/{order['id']}/picking"
        actors.admin.call("POST", f"{base}/lines/{shop.milk}", {"picked_quantity": 0})
        actors.admin.call("POST", f"{base}/lines/{shop.bread}", {"picked_quantity": 0})
        done = actors.admin.call("POST", f"{base}/complete")
        messages = _messages_until(ws, _is_status("cancelled"))

    assert done["status"] == "completed"
    assert [(m["type"], m["status"], m["reason"], m["status_version"]) for m in messages] == [
        ("order.status_changed", "cancelled", "nothing_picked", 4)
    ]
    assert _figures(shop) == {"milk": (10, 0, 10), "bread": (5, 0, 5), "oat": (4, 0, 4)}
    read = actors.customer.call("GET", f"/api/orders/{order['id']}")
    assert (read["status"], read["cancel_reason"]) == ("cancelled", "nothing_picked")
    assert read["total_cents"] == 3 * MILK + BREAD + FEE  # nothing is charged: cancelled
    types = _event_types(order["id"])
    assert "order.amended" not in types
    assert types.index("picking.completed") < types.index("order.cancelled")
    wait_until(lambda: _status(order["id"]) == "cancelled")
    assert Order.objects.get(pk=order["id"]).history.filter(status="ready").count() == 0


def test_admin_cancel_during_picking_releases_a_pending_substitute(
    live_stack: Any, live_admin: Any
) -> None:
    shop = _shop()
    actors = _actors(live_stack, live_admin.http)
    order, _delivery = _picking_order(shop, actors)
    _propose(actors, order, shop)
    assert _figures(shop) == {"milk": (10, 3, 7), "bread": (5, 1, 4), "oat": (4, 2, 2)}

    actors.admin.call(
        "POST", f"/api/admin/orders/{order['id']}/cancel", {"reason": "store closing"}
    )

    assert _figures(shop) == {"milk": (10, 0, 10), "bread": (5, 0, 5), "oat": (4, 0, 4)}
    late = httpx.post(
        f"{live_stack.http}/api/orders/{order['id']}/substitutions/{shop.milk}",
        json={"accept": True},
        headers={"Authorization": f"Bearer {actors.customer.token}"},
    )
    assert (late.status_code, late.json()["error"]["code"]) == (409, "invalid_transition")
    released = OutboxEvent.objects.get(aggregate_id=order["id"], type="inventory.released")
    assert sorted((x["product_id"], x["quantity"]) for x in released.payload["lines"]) == sorted(
        [(shop.milk, 3), (shop.bread, 1), (shop.oat, 2)]
    )
    assert _figures(shop)["oat"] == (4, 0, 4)


def test_errors_of_the_answer_and_the_line_endpoints(live_stack: Any, live_admin: Any) -> None:
    shop = _shop()
    actors = _actors(live_stack, live_admin.http)
    order, _delivery = _picking_order(shop, actors)
    _propose(actors, order, shop)
    stranger = Client(live_stack.http, "/api/auth/token", UserFactory.create().email)
    answer = f"/api/orders/{order['id']}/substitutions/{shop.milk}"

    # another customer's order is not found, and nothing changes
    assert stranger.call("POST", answer, {"accept": True}, expect=404)["error"]["code"] == (
        "not_found"
    )
    # bad bodies are 400 in the error shape
    bodies: list[Any] = [{}, {"accept": "yes"}, {"accept": 1}, [], {"accept": None}]
    for body in bodies:
        error = actors.customer.call("POST", answer, body, expect=400)["error"]
        assert error["code"] == "validation_error", body
        assert set(error) == {"code", "message", "details"}
    bad = httpx.post(
        f"{live_stack.http}{answer}",
        content=b"{not json",
        headers={
            "Authorization": f"Bearer {actors.customer.token}",
            "Content-Type": "application/json",
        },
    )
    assert (bad.status_code, bad.json()["error"]["code"]) == (400, "malformed_request")
    line = f"/api/admin/orders/{order['id']}/picking/lines"
    cases: list[tuple[dict[str, Any], str]] = [
        ({"picked_quantity": 4}, "picked_quantity"),
        ({"picked_quantity": "x"}, "picked_quantity"),
        ({}, "picked_quantity"),
        (
            {"picked_quantity": 1, "substitute": {"product_id": shop.bread, "quantity": 1}},
            "substitute.product_id",
        ),
        (
            {"picked_quantity": 1, "substitute": {"product_id": shop.oat, "quantity": 0}},
            "substitute.quantity",
        ),
        (
            {"picked_quantity": 1, "substitute": {"product_id": "nope", "quantity": 1}},
            "substitute.product_id",
        ),
        (
            {"picked_quantity": 1, "substitute": {"product_id": order["id"], "quantity": 1}},
            "substitute.product_id",
        ),
    ]
    for body, field in cases:
        error = actors.admin.call("POST", f"{line}/{shop.milk}", body, expect=400)["error"]
        assert (error["code"], field in error["details"]) == ("validation_error", True), body
    too_many = {"picked_quantity": 1, "substitute": {"product_id": shop.oat, "quantity": 5}}
    short = actors.admin.call("POST", f"{line}/{shop.milk}", too_many, expect=409)["error"]
    assert (short["code"], short["details"]["available"]) == ("insufficient_stock", 4)
    assert actors.admin.call("POST", f"{line}/{shop.oat}", {"picked_quantity": 0}, expect=404)
    assert actors.admin.call(
        "POST",
        f"/api/admin/orders/{shop.oat}/picking/lines/{shop.milk}",
        {"picked_quantity": 0},
        expect=404,
    )
    waiting = actors.admin.call(
        "POST", f"/api/admin/orders/{order['id']}/picking/complete", expect=409
    )["error"]
    assert (waiting["code"], waiting["details"]) == (
        "invalid_transition",
        {"waiting_for": [shop.milk]},
    )
    # and none of that moved a unit: the proposal (2 oat) still holds
    assert _figures(shop) == {"milk": (10, 3, 7), "bread": (5, 1, 4), "oat": (4, 2, 2)}
    detail = actors.admin.call("GET", f"/api/admin/orders/{order['id']}")
    assert detail["picking"]["lines"][0]["substitute"]["status"] == "proposed"
    assert detail["substitutions"][0]["status"] == "proposed"


def test_a_substitutes_last_units_raced_by_new_orders_never_oversell(
    live_stack: Any, live_admin: Any
) -> None:
    """The oat drinks' last 4 units: staff hold 2 of them for a proposal, then record it
    again and again (1 to 3 units, each record replacing the last) while 12 customers
    order 1 each, twice, through the public API; the workers reserve for the orders under
    the same row locks. Afterwards every unit is accounted for: reserved = the
    proposal's (if it holds) + the confirmed orders'; nothing oversold, no 500."""
    shop = _shop(oat=4)
    actors = _actors(live_stack, live_admin.http)
    order, _delivery = _picking_order(shop, actors)
    _propose(actors, order, shop)
    buyers = [
        Client(live_stack.http, "/api/auth/token", UserFactory.create().email) for _ in range(12)
    ]
    placed: list[str] = []
    outcomes: list[int] = []
    errors: list[BaseException] = []
    start = threading.Barrier(len(buyers) + 1)

    def buy(client: Client) -> None:
        try:
            start.wait(timeout=10)
            body = order_body(shop.store_id, (shop.oat, 1))
            for _ in range(2):
                placed.append(client.call("POST", "/api/orders", body, expect=201)["id"])
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    bought = threading.Event()

    def propose() -> None:
        """Records again and again (3, 1, 2, ... oat drinks) until every order is decided."""
        try:
            start.wait(timeout=10)
            attempt = 0
            while attempt < 300:
                attempt += 1
                response = httpx.post(
                    f"{live_admin.http}/api/admin/orders/{order['id']}/picking/lines/{shop.milk}",
                    json={
                        "picked_quantity": 1,
                        "substitute": {"product_id": shop.oat, "quantity": 1 + attempt % 3},
                    },
                    headers={"Authorization": f"Bearer {actors.admin.token}"},
                    timeout=10,
                )
                outcomes.append(response.status_code)
                pending = Order.objects.filter(pk__in=list(placed), status="pending").exists()
                if bought.is_set() and not pending and attempt >= 20:
                    break
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=buy, args=(b,)) for b in buyers]
    threads.append(threading.Thread(target=propose))
    for t in threads:
        t.start()
    for t in threads[:-1]:
        t.join(timeout=60)
    bought.set()
    threads[-1].join(timeout=120)
    assert not errors, errors
    assert set(outcomes) <= {200, 409}, outcomes

    wait_until(
        lambda: not Order.objects.filter(pk__in=placed, status="pending").exists(), timeout=30
    )
    decided = Counter(Order.objects.filter(pk__in=placed).values_list("status", "cancel_reason"))
    confirmed = decided[("confirmed", None)]
    assert confirmed + decided[("cancelled", "out_of_stock")] == 2 * len(buyers), decided
    line = PickingLine.objects.filter(order_id=order["id"], product_id=shop.milk).first()
    held = line.substitute_quantity if line and line.substitution_status == "proposed" else 0
    on_hand, reserved, available = _figures(shop)["oat"]
    assert on_hand == 4 and available >= 0
    assert reserved == (held or 0) + confirmed, (reserved, held, confirmed, outcomes)
    assert _figures(shop)["milk"] == (10, 3, 7)
