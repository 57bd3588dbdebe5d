"""Every socket handshake counts in its client IP's public rate limit (contract v1.1,
"Order sockets"), on every route: the order socket with its slot's claim in one Redis
round trip (``ws_guard.claim_handshake``), alone when its token or ``since`` is bad, and
any other path through ``HandshakeRateLimit`` (``lokaly_public.routing``).

Driven through the public application's WebSocket router, each test from an address of
its own, at a limit of 3 handshakes a minute.
"""

from __future__ import annotations

import itertools
import time
import uuid
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.db import connection
from django.test.utils import CaptureQueriesContext, override_settings

from lokaly_core.accounts.tokens import PUBLIC, issue_pair
from lokaly_core.redis_client import get_redis
from lokaly_public.middleware import ip_window
from lokaly_public.routing import websocket_urlpatterns
from lokaly_public.ws_guard import _key
from tests.conftest import client_for, order_body
from tests.factories import StockFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

app = URLRouter(websocket_urlpatterns)
LIMIT = 3
WINDOW_MARGIN_S = 20  # a test here takes a few seconds at most
_addresses = itertools.count(1)


@pytest.fixture(autouse=True)
def _limit() -> Any:
    with override_settings(RATELIMIT_ENABLE=True, PUBLIC_RATE_LIMIT=f"{LIMIT}/m"):
        yield


@pytest.fixture
def address() -> str:
    """An address of this test's own (the window's count outlives the test) whose window
    does not end during the test: windows are fixed (a minute here, staggered by
    address), and a count that starts again mid-test would let the last handshake in."""
    while True:
        candidate = f"198.51.{uuid.uuid4().int % 250}.{next(_addresses) % 250 + 1}"
        window = ip_window(candidate)
        assert window is not None
        if window.window - time.time() > WINDOW_MARGIN_S:
            return candidate


def _order() -> tuple[str, str, str]:
    stock = StockFactory.create(on_hand=5)
    customer = UserFactory.create()
    response = client_for(customer).post(
        "/api/orders", order_body(stock.store_id, (stock.product_id, 1)), format="json"
    )
    return response.json()["id"], issue_pair(PUBLIC, customer)["access"], str(customer.pk)


async def _close_code(path: str, address: str) -> int | None:
    """The code the server closes the socket with at once; None when it stays open."""
    ws = WebsocketCommunicator(app, path)
    ws.scope["client"] = (address, 50000)
    connected, _ = await ws.connect(timeout=5)
    assert connected  # every handshake is accepted; a refusal is a close code
    code = None
    while not await ws.receive_nothing(timeout=0.3):  # the snapshot, or the close
        message = await ws.receive_output()
        if message["type"] == "websocket.close":
            code = message.get("code")
            break
    await ws.disconnect()
    return code


@pytest.mark.parametrize(
    "path_of",
    [
        pytest.param(lambda order, token: f"/ws/orders/{order}/?token={token}", id="watching"),
        pytest.param(lambda order, token: f"/ws/orders/{order}/?token=bad", id="bad-token"),
        pytest.param(
            lambda order, token: f"/ws/orders/{order}/?token={token}&since=x", id="bad-since"
        ),
        pytest.param(lambda order, token: "/ws/elsewhere/", id="no-such-route"),
    ],
)
async def test_every_route_counts_its_handshakes(path_of: Any, address: str) -> None:
    order_id, token, _ = await sync_to_async(_order)()
    path = path_of(order_id, token)

    codes = [await _close_code(path, address) for _ in range(LIMIT + 1)]

    assert codes[-1] == 4429, codes
    assert 4429 not in codes[:-1], codes


async def test_the_handshakes_of_one_address_count_together(address: str) -> None:
    order_id, token, _ = await sync_to_async(_order)()

    # bad ones and good ones in the same window
    first = await _close_code(f"/ws/orders/{order_id}/?token=bad", address)
    second = await _close_code("/ws/elsewhere/", address)
    third = await _close_code(f"/ws/orders/{order_id}/?token={token}", address)
    fourth = await _close_code(f"/ws/orders/{order_id}/?token={token}", address)

    assert (first, second, third, fourth) == (4401, 4404, None, 4429)


async def test_a_handshake_over_the_limit_claims_no_slot_and_reads_nothing(address: str) -> None:
    order_id, token, user_id = await sync_to_async(_order)()
    for _ in range(LIMIT):
        await _close_code("/ws/elsewhere/", address)

    captured = CaptureQueriesContext(connection)
    await sync_to_async(captured.__enter__)()
    try:
        code = await _close_code(f"/ws/orders/{order_id}/?token={token}", address)
    finally:
        await sync_to_async(captured.__exit__)(None, None, None)
    queries = await sync_to_async(lambda: list(captured.captured_queries))()

    assert code == 4429
    assert queries == []
    assert get_redis().zcard(await sync_to_async(_key)(user_id)) == 0
