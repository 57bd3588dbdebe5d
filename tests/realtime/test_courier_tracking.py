"""The order socket for couriers: who may watch, and the courier's location going live."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.utils import timezone

from lokaly_core.accounts.tokens import PUBLIC, issue_pair
from lokaly_core.domain.delivery import delivery_decline
from lokaly_core.orders.uow import DjangoUnitOfWork
from lokaly_public.routing import websocket_urlpatterns
from tests.conftest import client_for, order_body
from tests.factories import StockFactory, UserFactory, courier_on_shift, dispatch_confirmed

pytestmark = pytest.mark.django_db(transaction=True)

app = URLRouter(websocket_urlpatterns)


def _assigned() -> dict[str, Any]:
    """A customer's confirmed order assigned to a courier on shift; a second courier on shift."""
    stock = StockFactory.create(on_hand=5)
    customer = UserFactory.create()
    courier = courier_on_shift()
    response = client_for(customer).post(
        "/api/orders", order_body(stock.store_id, (stock.product_id, 1)), format="json"
    )
    order_id = response.json()["id"]
    delivery = dispatch_confirmed(order_id)
    other = courier_on_shift()
    return {
        "order_id": order_id,
        "delivery_id": delivery.id,
        "courier": courier,
        "other": other,
        "tokens": {
            who: issue_pair(PUBLIC, user)["access"]
            for who, user in (("customer", customer), ("courier", courier), ("other", other))
        },
    }


async def _watch(order_id: str, token: str) -> tuple[WebsocketCommunicator, dict[str, Any]]:
    ws = WebsocketCommunicator(app, f"/ws/orders/{order_id}/?token={token}")
    connected, _ = await ws.connect(timeout=5)
    assert connected
    return ws, json.loads(await ws.receive_from(timeout=5))


async def _closed_with(order_id: str, token: str) -> int:
    ws = WebsocketCommunicator(app, f"/ws/orders/{order_id}/?token={token}")
    connected, _ = await ws.connect(timeout=5)
    assert connected  # accepted, then closed with the code
    closing = await ws.receive_output(timeout=5)
    assert closing["type"] == "websocket.close"
    return closing["code"]


def _post_location(courier: Any, lat: float, lng: float) -> int:
    response = client_for(courier).post(
        "/api/courier/location", {"lat": lat, "lng": lng}, format="json"
    )
    return response.status_code


async def _next_location(
    ws: WebsocketCommunicator, courier: Any, lat: float, lng: float, *, timeout: float = 10.0
) -> dict[str, Any]:
    """Report (lat, lng) for ``courier`` until the watcher gets a location, or fail at the
    deadline (the group subscription may still be settling on the first report)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert await sync_to_async(_post_location)(courier, lat, lng) == 204
        try:
            return json.loads(await ws.receive_from(timeout=0.5))
        except TimeoutError:
            continue
    raise AssertionError(f"no courier.location within {timeout}s")


async def test_the_assigned_courier_watches_the_order() -> None:
    setup = await sync_to_async(_assigned)()

    ws, snapshot = await _watch(setup["order_id"], setup["tokens"]["courier"])

    assert snapshot["type"] == "order.snapshot"
    assert snapshot["order"]["id"] == setup["order_id"]
    assert snapshot["order"]["status"] == "confirmed"
    assert snapshot["order"]["delivery"]["id"] == str(setup["delivery_id"])
    assert snapshot["order"]["delivery"]["courier"]["id"] == str(setup["courier"].id)
    assert snapshot["order"]["delivery"]["status"] == "assigned"
    await ws.disconnect()


async def test_another_courier_may_not_watch() -> None:
    setup = await sync_to_async(_assigned)()

    assert await _closed_with(setup["order_id"], setup["tokens"]["other"]) == 4403


async def test_a_courier_who_declined_may_no_longer_watch() -> None:
    setup = await sync_to_async(_assigned)()
    await sync_to_async(delivery_decline)(
        uow=DjangoUnitOfWork(), clock=timezone.now, delivery_id=setup["delivery_id"],
        courier_id=setup["courier"].id,
    )

    assert await _closed_with(setup["order_id"], setup["tokens"]["courier"]) == 4403


async def test_the_customer_sees_the_courier_move() -> None:
    setup = await sync_to_async(_assigned)()
    ws, _ = await _watch(setup["order_id"], setup["tokens"]["customer"])

    message = await _next_location(ws, setup["courier"], 52.3701, 4.8951)

    assert message["type"] == "courier.location"
    assert message["order_id"] == setup["order_id"]
    assert (message["lat"], message["lng"]) == (52.3701, 4.8951)
    assert message["recorded_at"].endswith("Z")
    assert set(message) == {"type", "order_id", "lat", "lng", "recorded_at"}
    await ws.disconnect()


async def test_a_courier_without_a_delivery_reaches_nobody() -> None:
    setup = await sync_to_async(_assigned)()
    ws, _ = await _watch(setup["order_id"], setup["tokens"]["customer"])
    await _next_location(ws, setup["courier"], 1.0, 1.0)  # the watcher is listening

    # when the courier without a delivery reports, then the assigned one
    assert await sync_to_async(_post_location)(setup["other"], 2.0, 2.0) == 204
    assert await sync_to_async(_post_location)(setup["courier"], 3.0, 3.0) == 204

    # then the assigned courier's comes through, and nothing from the other before it (both
    # went out from here in order; a late repeat of the first report may precede them)
    seen: list[tuple[float, float]] = []
    while not seen or seen[-1] != (3.0, 3.0):
        message = json.loads(await ws.receive_from(timeout=5))
        seen.append((message["lat"], message["lng"]))
    assert (2.0, 2.0) not in seen
    await ws.disconnect()


async def test_a_watcher_who_connects_mid_delivery_sees_where_the_courier_was_last() -> None:
    setup = await sync_to_async(_assigned)()
    assert await sync_to_async(_post_location)(setup["courier"], 52.3712, 4.8933) == 204

    ws, snapshot = await _watch(setup["order_id"], setup["tokens"]["customer"])
    message = json.loads(await ws.receive_from(timeout=5))

    assert snapshot["type"] == "order.snapshot"
    assert message["type"] == "courier.location"
    assert (message["order_id"], message["lat"], message["lng"]) == (
        setup["order_id"], 52.3712, 4.8933,
    )
    await ws.disconnect()


async def test_no_last_location_is_sent_once_the_order_is_no_longer_with_a_courier() -> None:
    setup = await sync_to_async(_assigned)()
    assert await sync_to_async(_post_location)(setup["courier"], 52.3712, 4.8933) == 204
    await sync_to_async(delivery_decline)(
        uow=DjangoUnitOfWork(), clock=timezone.now, delivery_id=setup["delivery_id"],
        courier_id=setup["courier"].id,
    )

    ws, snapshot = await _watch(setup["order_id"], setup["tokens"]["customer"])

    assert snapshot["order"]["delivery"] is None
    assert await ws.receive_nothing(timeout=0.5)
    await ws.disconnect()
