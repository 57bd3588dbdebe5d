"""Many sockets on the real public server (docs/performance.md, "Sockets at scale"): a
crowd connecting and closing at once leaves nothing behind in Redis, and every watcher
of an order gets its change once. bench/sockets.py measures the same at 1,000 sockets.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import cast

import aiohttp
import psutil
import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from lokaly_core.accounts.tokens import PUBLIC, issue_pair
from lokaly_core.broadcast import get_broadcaster
from lokaly_core.orders.models import Order
from lokaly_core.orders.realtime import order_group
from lokaly_core.redis_client import get_redis
from tests.conftest import client_for, order_body
from tests.factories import StockFactory, UserFactory
from tests.live import (
    delete_namespace_keys,
    free_port,
    live_environment,
    session_namespace,
    spawn,
    stop,
    wait_ready,
)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

SOCKETS = 200


class Server:
    def __init__(self, port: int, process: subprocess.Popen[bytes]) -> None:
        self.ws = f"ws://127.0.0.1:{port}"
        self.process = process

    def subscriptions_per_process(self) -> list[int]:
        """Channels and groups each server process's Redis connections subscribe to."""
        client = get_redis()
        redis_port = int(client.connection_pool.connection_kwargs.get("port", 6379))
        root = psutil.Process(self.process.pid)
        clients = cast("list[dict[str, str]]", client.client_list())
        counts = []
        for proc in [root, *root.children(recursive=True)]:
            ports = {
                c.laddr.port
                for c in proc.net_connections(kind="tcp")
                if c.raddr and c.raddr.port == redis_port
            }
            counts.append(
                sum(
                    int(c.get("sub", 0)) + int(c.get("psub", 0))
                    for c in clients
                    if int(c["addr"].rsplit(":", 1)[1]) in ports
                )
            )
        return counts

    def redis_subscriptions(self) -> int:
        return sum(self.subscriptions_per_process())

    def stale_subscriptions(self) -> int:
        """Subscriptions beyond the one channel a process that served sockets keeps for its
        lifetime (lokaly_public.consumers._keep_layer_listening)."""
        return sum(max(0, count - 1) for count in self.subscriptions_per_process())


@pytest.fixture(scope="module")
def server(django_db_setup: None) -> Iterator[Server]:
    namespace = session_namespace("lokaly-sockets")
    env = {
        **live_environment(namespace),
        "DJANGO_SETTINGS_MODULE": "lokaly_public.settings.test",
        "WS_MAX_SOCKETS_PER_USER": str(SOCKETS),  # one customer watches with all of them
    }
    port, logs = free_port(), dict[str, Path]()
    args = ["manage_public.py", "serve", "--no-migrate", "--port", str(port), "--workers", "2"]
    process = spawn("public-sockets", args, env, logs)
    try:
        wait_ready(f"http://127.0.0.1:{port}", {"public-sockets": process}, logs)
        yield Server(port, process)
    finally:
        stop(process)
        delete_namespace_keys(namespace)


def _order() -> tuple[str, str]:
    stock = StockFactory.create(on_hand=5)
    customer = UserFactory.create()
    response = client_for(customer).post(
        "/api/orders", order_body(stock.store_id, (stock.product_id, 1)), format="json"
    )
    return response.json()["id"], issue_pair(PUBLIC, customer)["access"]


async def _watch(session: aiohttp.ClientSession, url: str) -> aiohttp.ClientWebSocketResponse:
    ws = await session.ws_connect(url)
    snapshot = json.loads((await ws.receive(timeout=20)).data)
    assert snapshot["type"] == "order.snapshot"
    return ws


async def _until(check: Callable[[], int], expected: int, timeout: float = 10) -> int:
    """Poll ``check()`` (in a thread) until it returns ``expected`` or the deadline; the
    last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = await asyncio.to_thread(check)
        if value == expected or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.05)


async def test_sockets_connecting_and_closing_at_once_leave_no_subscription(
    server: Server,
) -> None:
    # given an order and no socket open
    order_id, token = await sync_to_async(_order)()
    assert await _until(server.stale_subscriptions, 0) == 0
    url = f"{server.ws}/ws/orders/{order_id}/?token={token}&since=1"

    # when SOCKETS sockets connect at once, each read its snapshot and close
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        opened = await asyncio.gather(*(_watch(session, url) for _ in range(SOCKETS)))
        # while open: per process that serves some, the order's group and the account's
        # group beside its kept channel, and nothing per socket (channel_layer.py)
        per_process = await asyncio.to_thread(server.subscriptions_per_process)
        assert 3 in per_process and all(count <= 3 for count in per_process), per_process
        await asyncio.gather(*(ws.close() for ws in opened))

    # then every one was served, and the server soon holds no subscription in Redis but
    # each process's one kept channel
    assert len(opened) == SOCKETS
    assert await _until(server.stale_subscriptions, 0) == 0
    assert all(count <= 1 for count in server.subscriptions_per_process())
    # ... which keeps a quiet process's layer reading: a new socket's first change is not
    # held back by the layer's 100 ms sleep while it had no subscription at all
    assert 1 in server.subscriptions_per_process()
    numsub = get_redis().pubsub_numsub(f"asgi__group__{order_group(order_id)}")
    assert numsub == [(f"asgi__group__{order_group(order_id)}".encode(), 0)]


def _broadcast_confirmed(order_id: str) -> None:
    Order.objects.filter(pk=order_id).update(
        status="confirmed", status_version=2, updated_at=timezone.now()
    )
    message = {
        "type": "order.status_changed",
        "order_id": order_id,
        "status": "confirmed",
        "previous_status": "pending",
        "status_version": 2,
        "occurred_at": "2026-11-27T10:00:00Z",
        "reason": None,
    }
    get_broadcaster().group_send(order_group(order_id), message)


async def test_every_watcher_gets_a_broadcast_change_once(server: Server) -> None:
    order_id, token = await sync_to_async(_order)()
    url = f"{server.ws}/ws/orders/{order_id}/?token={token}"
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        watchers = await asyncio.gather(*(_watch(session, url) for _ in range(SOCKETS)))

        await asyncio.to_thread(_broadcast_confirmed, order_id)

        async def changes(ws: aiohttp.ClientWebSocketResponse) -> list[int]:
            first = json.loads((await ws.receive(timeout=10)).data)
            try:  # nothing more: no repeat
                extra = await ws.receive(timeout=0.3)
                return [first["status_version"], json.loads(extra.data)["status_version"]]
            except TimeoutError:
                return [first["status_version"]]

        received = await asyncio.gather(*(changes(ws) for ws in watchers))
        await asyncio.gather(*(ws.close() for ws in watchers))
    assert received == [[2]] * SOCKETS
