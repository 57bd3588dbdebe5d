"""End to end, docs/reliability.md promise 5, with real processes: Redis loses its data
in the middle of a burst of orders; the worker recreates its stream and group, and
``events reconcile`` brings the orders whose events were lost to their final state.

The public server and a worker run as processes on a Redis database of their own (13),
which the test empties with FLUSHDB: other tests' data on a shared Redis is never touched.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
import redis
from django.conf import settings
from django.db.models import Count

from lokaly_core.inventory.models import Stock
from lokaly_core.orders.models import Order
from lokaly_core.outbox.models import OutboxEvent
from lokaly_core.outbox.reconcile import unsettled
from tests.conftest import order_body, wait_until
from tests.factories import PASSWORD, StockFactory, UserFactory
from tests.live import (
    ROOT,
    free_port,
    live_environment,
    session_namespace,
    spawn,
    stop,
    wait_ready,
)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

FLUSH_DB = int(os.environ.get("LOKALY_TEST_E2E_FLUSH_REDIS_DB", "13"))


@pytest.fixture
def flushable_stack(django_db_setup: None) -> Iterator[dict[str, Any]]:
    parts = urlsplit(settings.REDIS_URL)
    redis_url = urlunsplit(parts._replace(path=f"/{FLUSH_DB}"))
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    env = {
        **live_environment(session_namespace("lokaly-flush")),
        "REDIS_URL": redis_url,
        "EVENT_RECONCILE_AFTER_S": "3600",  # only the operator's reconcile, in this test
        "WORKER_METRICS_PORT": "0",
    }
    port = free_port()
    logs: dict[str, Path] = {}
    procs = {
        "public": spawn(
            "flush-public",
            ["manage_public.py", "serve", "--no-migrate", "--port", str(port), "--workers", "1"],
            {**env, "DJANGO_SETTINGS_MODULE": "lokaly_public.settings.test"},
            logs,
        ),
        "worker": spawn(
            "flush-worker",
            ["manage_admin.py", "run_worker", "--no-migrate", "--consumer", "flush-w1"],
            {**env, "DJANGO_SETTINGS_MODULE": "lokaly_admin.settings.test"},
            logs,
        ),
    }
    try:
        wait_ready(f"http://127.0.0.1:{port}", procs, logs)
        yield {"http": f"http://127.0.0.1:{port}", "env": env, "procs": procs, "redis": client}
    finally:
        procs["worker"].send_signal(signal.SIGCONT)
        for proc in procs.values():
            stop(proc)
        client.flushdb()


def _reconcile(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``manage_admin.py events reconcile --older-than 0``, as an operator runs it."""
    return subprocess.run(
        [sys.executable, "manage_admin.py", "events", "reconcile", "--older-than", "0"],
        cwd=ROOT,
        env={**env, "DJANGO_SETTINGS_MODULE": "lokaly_admin.settings.test"},
        capture_output=True,
        text=True,
        timeout=60,
    )


def _statuses(ids: list[str]) -> dict[str, int]:
    rows = Order.objects.filter(pk__in=ids).values("status").annotate(n=Count("id"))
    return {row["status"]: row["n"] for row in rows}


def test_orders_whose_events_redis_lost_reach_their_final_state_after_reconcile(
    flushable_stack: dict[str, Any],
) -> None:
    # given a store with 30 units and a customer placing 45 one-unit orders in three waves
    stock = StockFactory.create(on_hand=30)
    customer = UserFactory.create()
    base = flushable_stack["http"]
    token = httpx.post(
        f"{base}/api/auth/token", json={"email": customer.email, "password": PASSWORD}
    ).json()["access"]
    body = order_body(stock.store_id, (stock.product_id, 1))

    def place(n: int) -> list[str]:
        ids = []
        for _ in range(n):
            response = httpx.post(
                f"{base}/api/orders", json=body, headers={"Authorization": f"Bearer {token}"}
            )
            assert response.status_code == 201, response.text
            ids.append(response.json()["id"])
        return ids

    worker = flushable_stack["procs"]["worker"]
    first = place(15)
    wait_until(lambda: _statuses(first).get("pending", 0) == 0, timeout=30)

    # when the worker is frozen, 15 more orders are published but not read, and Redis
    # loses everything (FLUSHDB), then the worker goes on and 15 more orders arrive
    os.killpg(worker.pid, signal.SIGSTOP)
    lost = place(15)
    wait_until(
        lambda: (
            OutboxEvent.objects.filter(
                aggregate_id__in=lost, type="order.created", published_at__isnull=False
            ).count()
            == 15
        )
    )
    flushable_stack["redis"].flushdb()
    os.killpg(worker.pid, signal.SIGCONT)
    last = place(15)

    # then the worker recreated its stream and group and handled the last wave, while the
    # lost wave stays pending: its events are gone from Redis. (Redis may already have
    # answered the frozen worker's blocking read with the first of them before the flush;
    # that reply waits in the worker's socket and is handled when it resumes.)
    wait_until(lambda: _statuses(last).get("pending", 0) == 0, timeout=30)
    # and once the worker has settled every event it still can (no unsettled row's entry is
    # left on the stream), what is left unsettled is what the flush lost: the order.created
    # of every lost order still pending, and maybe more (the follow-ups of an order
    # confirmed just before the worker froze, published but not yet read when Redis lost
    # them; a lost order whose entry the frozen worker had already read): reconcile's work
    client, stream = flushable_stack["redis"], flushable_stack["env"]["EVENT_STREAM"]
    seen: dict[str, Any] = {}

    def only_lost_events_unsettled() -> bool:
        rows = list(unsettled(older_than_s=0).values_list("aggregate_id", "type", "stream_id"))
        on_stream = [r for r in rows if r[2] and client.xrange(stream, min=r[2], max=r[2])]
        pending = set(
            Order.objects.filter(pk__in=lost, status="pending").values_list("pk", flat=True)
        )
        unsettled_created = {a for a, t, _ in rows if t == "order.created"}
        seen.update(unsettled=rows, on_stream=on_stream, pending=sorted(map(str, pending)))
        return not on_stream and pending <= unsettled_created

    try:
        wait_until(only_lost_events_unsettled, timeout=30)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last seen: {seen}") from None
    stuck = _statuses(lost).get("pending", 0)
    assert stuck >= 10, _statuses(lost)
    to_publish = unsettled(older_than_s=0).count()

    # when the operator runs reconcile
    result = _reconcile(flushable_stack["env"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"still on the stream, {to_publish} published again." in result.stdout, result.stdout

    # then every order reaches its final state, and stock is exact: 30 confirmed, 15 out
    # of stock, reserved = the 30 confirmed units
    everyone = first + lost + last
    wait_until(lambda: _statuses(everyone).get("pending", 0) == 0, timeout=30)
    assert _statuses(everyone) == {"confirmed": 30, "cancelled": 15}
    assert Stock.objects.get(pk=stock.pk).reserved == 30
    assert set(
        Order.objects.filter(pk__in=everyone, status="cancelled").values_list(
            "cancel_reason", flat=True
        )
    ) == {"out_of_stock"}
    # and a second reconcile finds nothing left to do
    again = _reconcile(flushable_stack["env"])
    assert again.returncode == 0, again.stdout + again.stderr
    assert "still on the stream, 0 published again." in again.stdout, again.stdout
    assert _statuses(everyone) == {"confirmed": 30, "cancelled": 15}
