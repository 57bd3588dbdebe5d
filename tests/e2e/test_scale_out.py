"""Scale out (docs/reliability.md, promise 8): two public server processes and two
workers together.

Events are shared across the workers with no double effects, and a socket on one public
process gets the updates of an order placed through the other.
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from django.db.models import Count, Q
from websockets.sync.client import connect

from lokaly_core.accounts.tokens import PUBLIC, issue_pair
from lokaly_core.inventory.models import Stock
from lokaly_core.orders.models import Order
from tests.conftest import order_body, wait_until
from tests.factories import StockFactory, UserFactory
from tests.live import free_port, spawn, stop, wait_ready

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

WORKERS = ("scale-worker-1", "scale-worker-2")


@dataclass
class TwoByTwo:
    servers: list[str]  # http://127.0.0.1:<port> of server A and server B
    logs: dict[str, Path]


@pytest.fixture
def two_by_two(transactional_db: None, live_env: dict[str, str]) -> Iterator[TwoByTwo]:
    """Per test, and after ``transactional_db``: the processes stop before the test
    database is flushed (a TRUNCATE under a running worker can deadlock with it)."""
    logs: dict[str, Path] = {}
    procs: dict[str, subprocess.Popen[bytes]] = {}
    # One IP sends everything here; the limit is counted across the two servers in Redis.
    public_env = {
        **live_env,
        "DJANGO_SETTINGS_MODULE": "lokaly_public.settings.test",
        "PUBLIC_RATE_LIMIT": "100000/m",
    }
    worker_env = {
        **live_env,
        "DJANGO_SETTINGS_MODULE": "lokaly_admin.settings.test",
        "WORKER_METRICS_PORT": "0",
        "LOG_LEVEL": "INFO",
    }
    servers = []
    for name in ("public-a", "public-b"):
        port = free_port()
        args = ["manage_public.py", "serve", "--no-migrate", "--port", str(port)]
        procs[name] = spawn(name, [*args, "--workers", "1"], public_env, logs)
        servers.append(f"http://127.0.0.1:{port}")
    for name in WORKERS:
        args = ["manage_admin.py", "run_worker", "--no-migrate", "--consumer", name]
        procs[name] = spawn(name, args, worker_env, logs)
    try:
        for url in servers:
            wait_ready(url, procs, logs)
        yield TwoByTwo(servers, logs)
    finally:
        for proc in procs.values():
            stop(proc)


def _token(user) -> str:
    return issue_pair(PUBLIC, user)["access"]


def _place(server: str, token: str, body: dict) -> dict:
    response = httpx.post(
        f"{server}/api/orders", json=body, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    assert response.status_code == 201, response.text
    return response.json()


def _processed_event_ids(log: Path) -> list[str]:
    ids = []
    for line in log.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("msg") == "event processed":
            ids.append(entry["event_id"])
    return ids


def test_socket_on_server_b_follows_an_order_placed_through_server_a(two_by_two) -> None:
    server_a, server_b = two_by_two.servers
    stock = StockFactory.create(on_hand=5)
    token = _token(UserFactory.create())

    # when the order is placed through A and watched on B
    order = _place(server_a, token, order_body(stock.store_id, (stock.product_id, 1)))
    ws_b = server_b.replace("http", "ws")
    with connect(f"{ws_b}/ws/orders/{order['id']}/?token={token}&since=1") as ws:
        snapshot = json.loads(ws.recv(timeout=10))
        assert snapshot["type"] == "order.snapshot"
        # then B's socket sees it confirmed (live, or replayed by since=1 if already done)
        confirmed = json.loads(ws.recv(timeout=15))
        assert (confirmed["status"], confirmed["status_version"]) == ("confirmed", 2)
        # and a change made through A while the socket is open reaches B live
        response = httpx.post(
            f"{server_a}/api/orders/{order['id']}/cancel",
            headers={"Authorization": f"Bearer {token}"},
            json={"reason": "scale test"},
        )
        assert response.status_code == 200, response.text
        cancelled = json.loads(ws.recv(timeout=15))
    assert (cancelled["type"], cancelled["status"], cancelled["status_version"]) == (
        "order.status_changed",
        "cancelled",
        3,
    )


def test_forty_orders_across_both_servers_are_each_processed_once_by_both_workers(
    two_by_two,
) -> None:
    # given ample stock and 40 customers
    stock = StockFactory.create(on_hand=1000)
    customers = [UserFactory.create() for _ in range(40)]
    jobs = [(two_by_two.servers[i % 2], _token(c), 1 + i % 3) for i, c in enumerate(customers)]

    # when they order at once, half through A and half through B
    def place(job: tuple[str, str, int]) -> str:
        server, token, quantity = job
        return _place(server, token, order_body(stock.store_id, (stock.product_id, quantity)))["id"]

    with ThreadPoolExecutor(max_workers=20) as pool:
        ids = list(pool.map(place, jobs))

    # then every order is confirmed exactly once, and stock is reserved exactly
    wait_until(
        lambda: Order.objects.filter(pk__in=ids, status="confirmed").count() == 40, timeout=40
    )
    orders = Order.objects.filter(pk__in=ids).annotate(
        confirmations=Count("history", filter=Q(history__status="confirmed")),
        changes=Count("history"),
    )
    assert (
        sorted((o.status_version, o.confirmations, o.changes) for o in orders) == [(2, 1, 2)] * 40
    )
    stock = Stock.objects.get(pk=stock.pk)
    assert (stock.on_hand, stock.reserved) == (1000, sum(q for _, _, q in jobs))

    # and both workers processed events, none of them twice
    def by_worker() -> dict[str, list[str]] | None:
        seen = {name: _processed_event_ids(two_by_two.logs[name]) for name in WORKERS}
        return seen if all(seen.values()) else None

    seen = wait_until(by_worker, timeout=10)
    repeated = Counter(sum(seen.values(), [])).most_common(1)
    assert repeated[0][1] == 1, f"event processed twice: {repeated}"
