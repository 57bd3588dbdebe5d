"""The order socket's ordering promise, in process: every change once, in version order."""

from __future__ import annotations

import json
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.utils import timezone

from lokaly_core.accounts.tokens import PUBLIC, issue_pair
from lokaly_core.domain.model.orders import Actor
from lokaly_core.domain.services import order_cancel, order_reserve_stock
from lokaly_core.orders.models import OrderStatusChange
from lokaly_core.orders.realtime import order_group
from lokaly_core.orders.uow import DjangoUnitOfWork
from lokaly_public.routing import websocket_urlpatterns
from tests.conftest import client_for, order_body
from tests.factories import StockFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

app = URLRouter(websocket_urlpatterns)


def _setup() -> tuple[str, str, list[dict[str, Any]]]:
    """A customer's order taken to version 3 (pending, confirmed, cancelled)."""
    stock = StockFactory.create(on_hand=5)
    customer = UserFactory.create()
    response = client_for(customer).post(
        "/api/orders", order_body(stock.store_id, (stock.product_id, 1)), format="json"
    )
    order_id = response.json()["id"]
    order_reserve_stock(uow=DjangoUnitOfWork(), clock=timezone.now, order_id=order_id)
    order_cancel(uow=DjangoUnitOfWork(), clock=timezone.now, order_id=order_id,
                 actor=Actor.CUSTOMER, reason="r", customer_id=customer.id)
    history = [
        {"type": "order.status_changed", "order_id": order_id, "status": c.status,
         "previous_status": c.previous_status, "status_version": c.status_version,
         "occurred_at": c.occurred_at.isoformat().replace("+00:00", "Z"), "reason": c.reason}
        for c in OrderStatusChange.objects.filter(order_id=order_id).order_by("status_version")
    ]
    return order_id, issue_pair(PUBLIC, customer)["access"], history


async def _connect(path: str) -> tuple[WebsocketCommunicator, dict[str, Any]]:
    communicator = WebsocketCommunicator(app, path)
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    return communicator, json.loads(await communicator.receive_from(timeout=5))


async def test_since_replays_missed_changes_oldest_first() -> None:
    order_id, token, history = await sync_to_async(_setup)()

    ws, snapshot = await _connect(f"/ws/orders/{order_id}/?token={token}&since=1")

    assert snapshot["type"] == "order.snapshot"
    assert snapshot["order"]["status_version"] == 3
    replayed = [json.loads(await ws.receive_from(timeout=5)) for _ in range(2)]
    assert [m["status_version"] for m in replayed] == [2, 3]
    assert [m["status"] for m in replayed] == ["confirmed", "cancelled"]
    assert await ws.receive_nothing(timeout=0.2)
    await ws.disconnect()


async def test_live_messages_are_deduplicated_and_gaps_filled_from_history() -> None:
    order_id, token, history = await sync_to_async(_setup)()
    ws, snapshot = await _connect(f"/ws/orders/{order_id}/?token={token}&since=3")
    assert snapshot["order"]["status_version"] == 3
    consumer_version = 3
    layer = get_channel_layer()

    # a stale repeat, then a message that skips version 4 (written to history meanwhile)
    await sync_to_async(OrderStatusChange.objects.create)(
        order_id=order_id, status="cancelled", previous_status="cancelled",
        status_version=4, occurred_at=timezone.now(), reason="test-gap")
    for version in (consumer_version, 5):
        await layer.group_send(order_group(order_id), {
            "type": "order.status_changed", "order_id": order_id, "status": "cancelled",
            "previous_status": "cancelled", "status_version": version,
            "occurred_at": "2026-11-27T10:00:00Z", "reason": None})

    received = [json.loads(await ws.receive_from(timeout=5)) for _ in range(2)]
    assert [m["status_version"] for m in received] == [4, 5]
    assert received[0]["reason"] == "test-gap"
    assert await ws.receive_nothing(timeout=0.2)
    await ws.disconnect()


async def test_ping_gets_pong_and_garbage_gets_an_error_without_closing() -> None:
    order_id, token, _ = await sync_to_async(_setup)()
    ws, _ = await _connect(f"/ws/orders/{order_id}/?token={token}")

    await ws.send_to(text_data="{not json")
    error = json.loads(await ws.receive_from(timeout=5))
    await ws.send_to(text_data=json.dumps({"type": "ping"}))
    pong = json.loads(await ws.receive_from(timeout=5))

    assert error["type"] == "error"
    assert error["error"]["code"] == "malformed_request"
    assert pong == {"type": "pong"}
    await ws.disconnect()


@pytest.mark.parametrize(
    ("who", "code"),
    [("nobody", 4401), ("stranger", 4403), ("courier", 4403), ("missing", 4404)],
)
async def test_refusals_close_with_contract_codes(who: str, code: int) -> None:
    order_id, owner_token, _ = await sync_to_async(_setup)()
    tokens = {
        "nobody": "",
        "stranger": await sync_to_async(
            lambda: issue_pair(PUBLIC, UserFactory.create())["access"])(),
        "courier": await sync_to_async(
            lambda: issue_pair(PUBLIC, UserFactory.create(role="courier"))["access"])(),
        "missing": owner_token,
    }
    target = "00000000-0000-4000-8000-000000000000" if who == "missing" else order_id
    communicator = WebsocketCommunicator(app, f"/ws/orders/{target}/?token={tokens[who]}")
    connected, _ = await communicator.connect(timeout=5)
    assert connected  # accepted, then closed with the code
    closing = await communicator.receive_output(timeout=5)
    assert closing == {"type": "websocket.close", "code": code}
