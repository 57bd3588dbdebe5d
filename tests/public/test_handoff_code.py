"""Proof of delivery (v1.1): the hand-off code, as the customer and the courier see it."""

from __future__ import annotations

import json
import re
import threading
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.db import connection
from django.utils import timezone

from lokaly_core.accounts.tokens import PUBLIC, issue_pair
from lokaly_core.delivery.models import Delivery
from lokaly_core.domain.model.orders import OrderStatus
from lokaly_core.domain.picking import order_advance_to
from lokaly_core.orders.models import Order
from lokaly_core.orders.selectors import order_events
from lokaly_core.orders.uow import DjangoUnitOfWork
from lokaly_core.outbox.models import OutboxEvent
from lokaly_public.routing import websocket_urlpatterns
from tests.conftest import client_for, order_body
from tests.factories import StockFactory, UserFactory, courier_on_shift, dispatch_confirmed
from tests.public.conftest import assert_error

DELIVERIES = "/api/courier/deliveries"
V1_DELIVERY_KEYS = {
    "id", "order_id", "order_number", "order_status", "status", "store", "delivery_address",
    "customer_name", "note", "items", "assigned_at", "picked_up_at", "delivered_at",
}
V1_ORDER_KEYS = {
    "id", "number", "status", "status_version", "store_id", "customer_id", "items",
    "subtotal_cents", "delivery_fee_cents", "total_cents", "currency", "delivery_address",
    "note", "cancel_reason", "delivery", "created_at", "updated_at",
}


@pytest.fixture
def handoff_store(store):
    store.requires_handoff_code = True
    store.save(update_fields=["requires_handoff_code"])
    return store


@pytest.fixture
def assigned(courier, customer, place, stocked):
    """``make()``: an order of the customer's, confirmed and assigned to ``courier``."""
    courier_on_shift(courier)
    stock = stocked(on_hand=10)

    def make() -> Delivery:
        return dispatch_confirmed(place(customer, (stock.product_id, 1)).id)

    return make


def _ready(delivery: Delivery) -> None:
    order_advance_to(
        uow=DjangoUnitOfWork(), clock=timezone.now, order_id=delivery.order_id,
        target=OrderStatus.READY,
    )


def _picked_up(courier_client, delivery: Delivery) -> dict[str, Any]:
    _ready(delivery)
    response = courier_client.post(f"{DELIVERIES}/{delivery.id}/pickup")
    assert response.status_code == 200, response.content
    return response.json()


def _complete(client, delivery: Delivery, body: Any = None):
    return client.post(f"{DELIVERIES}/{delivery.id}/complete", body, format="json")


def _code(delivery: Delivery) -> str:
    code = Delivery.objects.get(pk=delivery.pk).handoff_code
    assert code is not None and re.fullmatch(r"[0-9]{4}", code)
    return code


def _wrong(code: str) -> str:
    return "0000" if code != "0000" else "1111"


def _order(customer_client, delivery: Delivery) -> dict[str, Any]:
    return customer_client.get(f"/api/orders/{delivery.order_id}").json()


# -- the customer -----------------------------------------------------------------------


def test_customer_sees_the_code_only_while_out_for_delivery(
    customer_client, courier_client, handoff_store, assigned
):
    # given an assigned order at a store that requires a code: no code yet
    delivery = assigned()
    assert "handoff_code" not in _order(customer_client, delivery)
    _ready(delivery)
    assert "handoff_code" not in _order(customer_client, delivery)

    # when the courier picks it up
    courier_client.post(f"{DELIVERIES}/{delivery.id}/pickup")

    # then the customer's order (detail and list) carries the delivery's code
    code = _code(delivery)
    body = _order(customer_client, delivery)
    assert body["status"] == "out_for_delivery"
    assert body["handoff_code"] == code
    assert set(body) == V1_ORDER_KEYS | {"handoff_code"}
    (row,) = customer_client.get("/api/orders").json()["results"]
    assert row["handoff_code"] == code

    # and once delivered it is gone again
    assert _complete(courier_client, delivery, {"handoff_code": code}).status_code == 200
    assert "handoff_code" not in _order(customer_client, delivery)


def test_another_customer_cannot_read_the_order_or_its_code(
    other_customer_client, courier_client, handoff_store, assigned
):
    delivery = assigned()
    _picked_up(courier_client, delivery)

    response = other_customer_client.get(f"/api/orders/{delivery.order_id}")

    assert_error(response, 404, "not_found")
    assert other_customer_client.get("/api/orders").json()["results"] == []


# -- the courier ------------------------------------------------------------------------


def test_courier_is_told_a_code_is_needed_but_never_shown_it(
    courier_client, handoff_store, assigned
):
    delivery = assigned()
    picked = _picked_up(courier_client, delivery)
    code = _code(delivery)

    listed = courier_client.get(DELIVERIES).json()["results"]
    refused = _complete(courier_client, delivery, {"handoff_code": _wrong(code)})
    done = _complete(courier_client, delivery, {"handoff_code": code})

    assert picked["handoff_code_required"] is True and picked["handoff_attempts_left"] == 5
    assert listed[0]["handoff_attempts_left"] == 5
    assert refused.status_code == 409
    assert done.status_code == 200 and done.json()["handoff_attempts_left"] == 4
    for body in (picked, listed, refused.json(), done.json()):
        assert not [k for k, _ in _flat(body) if k.endswith(".handoff_code")]
        assert code not in {str(v) for _, v in _flat(body)}


def _flat(body: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Every (key path, leaf value) of a JSON body, to look for the code anywhere in it."""
    if isinstance(body, dict):
        return [kv for k, v in body.items() for kv in _flat(v, f"{prefix}.{k}")]
    if isinstance(body, list):
        return [kv for i, v in enumerate(body) for kv in _flat(v, f"{prefix}.{i}")]
    return [(prefix, body)]


def test_wrong_codes_count_down_then_the_delivery_is_locked_even_for_the_right_code(
    courier_client, customer_client, handoff_store, assigned
):
    # given a picked-up delivery with a code
    delivery = assigned()
    _picked_up(courier_client, delivery)
    code = _code(delivery)
    events = OutboxEvent.objects.count()

    # when the courier tries five wrong codes, then the right one
    lefts = [
        assert_error(
            _complete(courier_client, delivery, {"handoff_code": _wrong(code)}),
            409,
            "invalid_handoff_code",
        )["attempts_left"]
        for _ in range(5)
    ]
    locked = _complete(courier_client, delivery, {"handoff_code": code})

    # then 4..0 attempts left, then locked; nothing was delivered
    assert lefts == [4, 3, 2, 1, 0]
    assert assert_error(locked, 409, "handoff_locked") == {"attempts_left": 0}
    row = Delivery.objects.get(pk=delivery.pk)
    assert (row.status, row.handoff_failed_attempts) == ("picked_up", 5)
    assert Order.objects.get(pk=delivery.order_id).status == "out_for_delivery"
    assert OutboxEvent.objects.count() == events
    assert courier_client.get(DELIVERIES).json()["results"][0]["handoff_attempts_left"] == 0
    # the customer still sees the code (staff will complete the delivery)
    assert _order(customer_client, delivery)["handoff_code"] == code


@pytest.mark.parametrize("body", [None, {}, {"handoff_code": ""}, {"handoff_code": None}])
def test_a_missing_code_is_refused_without_costing_an_attempt(
    courier_client, handoff_store, assigned, body
):
    delivery = assigned()
    _picked_up(courier_client, delivery)

    response = _complete(courier_client, delivery, body)

    assert assert_error(response, 409, "invalid_handoff_code") == {"attempts_left": 5}
    assert Delivery.objects.get(pk=delivery.pk).handoff_failed_attempts == 0


@pytest.mark.parametrize("code", [["1234"], {"a": 1}, "1" * 17])
def test_a_malformed_code_is_a_validation_error_and_costs_nothing(
    courier_client, handoff_store, assigned, code
):
    delivery = assigned()
    _picked_up(courier_client, delivery)

    response = _complete(courier_client, delivery, {"handoff_code": code})

    assert "handoff_code" in assert_error(response, 400, "validation_error")
    assert Delivery.objects.get(pk=delivery.pk).handoff_failed_attempts == 0


def test_the_right_code_delivers_with_the_v1_events(
    courier_client, customer_client, handoff_store, assigned
):
    delivery = assigned()
    _picked_up(courier_client, delivery)
    before = len(order_events(delivery.order_id))

    response = _complete(courier_client, delivery, {"handoff_code": _code(delivery)})

    assert response.status_code == 200, response.content
    assert response.json()["status"] == "delivered"
    assert _order(customer_client, delivery)["status"] == "delivered"
    new = order_events(delivery.order_id)[before:]
    assert sorted(e["type"] for e in new) == ["delivery.completed", "order.status_changed"]
    freed = OutboxEvent.objects.filter(type="courier.available", payload__reason="delivered")
    assert freed.count() == 1


def test_a_store_without_the_option_needs_no_code_and_shows_the_v1_shapes(
    courier_client, customer_client, store, assigned
):
    # given a store that requires no code (the default)
    assert store.requires_handoff_code is False
    delivery = assigned()
    picked = _picked_up(courier_client, delivery)

    # then nobody sees a code or a code's fields, and complete needs no body
    assert set(picked) == V1_DELIVERY_KEYS
    assert set(_order(customer_client, delivery)) == V1_ORDER_KEYS
    response = courier_client.post(f"{DELIVERIES}/{delivery.id}/complete")
    assert response.status_code == 200, response.content
    assert set(response.json()) == V1_DELIVERY_KEYS
    assert Delivery.objects.get(pk=delivery.pk).handoff_code is None


def test_turning_the_option_on_after_pickup_does_not_change_that_delivery(
    courier_client, store, assigned
):
    delivery = assigned()
    _picked_up(courier_client, delivery)
    store.requires_handoff_code = True
    store.save(update_fields=["requires_handoff_code"])

    response = courier_client.post(f"{DELIVERIES}/{delivery.id}/complete")

    assert response.status_code == 200, response.content


# -- races ------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_concurrent_wrong_codes_are_each_counted_once(courier, handoff_store, assigned):
    # given a picked-up delivery
    delivery = assigned()
    _picked_up(client_for(courier), delivery)
    wrong = _wrong(_code(delivery))
    answers: list[tuple[int, dict[str, Any]]] = []
    start = threading.Barrier(7)

    def attempt() -> None:
        try:
            start.wait(timeout=30)
            response = _complete(client_for(courier), delivery, {"handoff_code": wrong})
            answers.append((response.status_code, response.json()["error"]))
        finally:
            connection.close()

    # when seven wrong codes arrive at once
    threads = [threading.Thread(target=attempt) for _ in range(7)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    # then exactly five were counted, each seeing its own attempts_left, two found it locked
    assert sorted(e["details"]["attempts_left"] for s, e in answers
                  if e["code"] == "invalid_handoff_code") == [0, 1, 2, 3, 4]
    assert [e["code"] for _, e in answers].count("handoff_locked") == 2
    assert {s for s, _ in answers} == {409}
    assert Delivery.objects.get(pk=delivery.pk).handoff_failed_attempts == 5


# -- the socket snapshot ----------------------------------------------------------------


async def _snapshot(order_id: Any, user: Any) -> dict[str, Any]:
    token = (await sync_to_async(issue_pair)(PUBLIC, user))["access"]
    path = f"/ws/orders/{order_id}/?token={token}"
    ws = WebsocketCommunicator(URLRouter(websocket_urlpatterns), path)
    connected, _ = await ws.connect(timeout=5)
    assert connected
    message = json.loads(await ws.receive_from(timeout=5))
    await ws.disconnect()
    assert message["type"] == "order.snapshot"
    return message["order"]


def _out_for_delivery_at_a_handoff_store() -> tuple[Delivery, Any, Any, str]:
    """(the delivery, its customer, its courier, its code), picked up."""
    stock = StockFactory.create(on_hand=5, store__requires_handoff_code=True)
    customer, courier = UserFactory.create(), courier_on_shift()
    response = client_for(customer).post(
        "/api/orders", order_body(stock.store_id, (stock.product_id, 1)), format="json"
    )
    delivery = dispatch_confirmed(response.json()["id"])
    _picked_up(client_for(courier), delivery)
    return delivery, customer, courier, _code(delivery)


@pytest.mark.django_db(transaction=True)
async def test_the_customers_snapshot_carries_the_code_the_couriers_never() -> None:
    delivery, customer, courier, code = await sync_to_async(_out_for_delivery_at_a_handoff_store)()

    customers = await _snapshot(delivery.order_id, customer)
    couriers = await _snapshot(delivery.order_id, courier)

    assert customers["handoff_code"] == code
    assert customers["status"] == "out_for_delivery"
    assert "handoff_code" not in couriers
    assert set(couriers) == V1_ORDER_KEYS
    assert {k: v for k, v in customers.items() if k != "handoff_code"} == couriers
