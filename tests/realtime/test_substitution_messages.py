"""v1.1 socket messages of the picking, in process: a proposal reaches the order's
customer (not its courier); the amendment reaches every watcher, a repeat is dropped."""

from __future__ import annotations

import json
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator

from lokaly_core.accounts.tokens import PUBLIC, issue_pair
from lokaly_core.orders.realtime import order_group
from lokaly_public.routing import websocket_urlpatterns
from tests.conftest import client_for, order_body
from tests.factories import StockFactory, UserFactory, courier_on_shift, dispatch_confirmed

pytestmark = pytest.mark.django_db(transaction=True)

app = URLRouter(websocket_urlpatterns)


def _assigned_order() -> tuple[str, str, str]:
    """A confirmed order with its courier assigned: (order id, customer's token, courier's)."""
    stock = StockFactory.create(on_hand=5)
    customer = UserFactory.create()
    courier = courier_on_shift()
    response = client_for(customer).post(
        "/api/orders", order_body(stock.store_id, (stock.product_id, 2)), format="json"
    )
    order_id = response.json()["id"]
    dispatch_confirmed(order_id)
    return (
        order_id,
        issue_pair(PUBLIC, customer)["access"],
        issue_pair(PUBLIC, courier)["access"],
    )


async def _watch(order_id: str, token: str) -> WebsocketCommunicator:
    ws = WebsocketCommunicator(app, f"/ws/orders/{order_id}/?token={token}")
    connected, _ = await ws.connect(timeout=5)
    assert connected
    assert json.loads(await ws.receive_from(timeout=5))["type"] == "order.snapshot"
    await ws.receive_nothing(timeout=0.2)  # a courier location, if any was reported
    return ws


def _marker(order_id: str) -> dict[str, Any]:
    """A group message every watcher is sent, published after the ones under test: the
    layer delivers a group's messages in order, so once it arrives the others have (a
    ping's pong, answered in the process, could overtake them on their way from Redis)."""
    return {
        "type": "courier.location",
        "order_id": order_id,
        "lat": 0.0,
        "lng": 0.0,
        "recorded_at": "2026-12-01T10:00:00Z",
    }


async def _drain(ws: WebsocketCommunicator, marker: dict[str, Any]) -> list[dict[str, Any]]:
    received = []
    while (message := json.loads(await ws.receive_from(timeout=5))) != marker:
        received.append(message)
    return received


async def test_proposals_reach_the_customer_and_amendments_everyone_once() -> None:
    order_id, customer_token, courier_token = await sync_to_async(_assigned_order)()
    customer = await _watch(order_id, customer_token)
    courier = await _watch(order_id, courier_token)
    layer = get_channel_layer()
    proposed = {
        "type": "order.substitution_proposed",
        "order_id": order_id,
        "product_id": order_id,
        "substitute": {"product_id": order_id, "name": "x", "quantity": 1, "unit_price_cents": 1},
        "expires_at": "2026-12-01T10:00:00Z",
    }
    amended = {
        "type": "order.amended",
        "order_id": order_id,
        "items": [],
        "subtotal_cents": 0,
        "total_cents": 199,
    }

    marker = _marker(order_id)
    for message in (proposed, amended, amended, marker):  # the amendment twice (a retry)
        await layer.group_send(order_group(order_id), message)

    assert await _drain(customer, marker) == [proposed, amended]
    assert await _drain(courier, marker) == [amended]
    await customer.disconnect()
    await courier.disconnect()
