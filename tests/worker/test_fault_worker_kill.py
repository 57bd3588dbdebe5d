"""No loss when a worker dies mid-handler: its pending entries are claimed by another
consumer (XAUTOCLAIM after EVENT_CLAIM_IDLE_MS) or taken back by the same consumer when it
restarts; the whole order pipeline survives a SIGKILLed worker in the middle of a burst."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from django.conf import settings
from django.db.models import Sum
from django.utils import timezone

from lokaly_core.events import Envelope, PickingCompleted
from lokaly_core.inventory.models import Stock
from lokaly_core.orders.models import Order, OrderLine
from lokaly_core.redis_client import get_redis
from lokaly_worker.registry import Registry
from tests.conftest import order_body, wait_until
from tests.factories import PASSWORD, ProductFactory, StockFactory, StoreFactory, UserFactory
from tests.live import (
    delete_namespace_keys,
    free_port,
    live_environment,
    session_namespace,
    spawn,
    stop,
    wait_ready,
)
from tests.worker.conftest import make_worker, run_until

pytestmark = pytest.mark.django_db(transaction=True)


def _publish(redis_client) -> str:
    event = PickingCompleted(order_id=uuid.uuid4(), store_id=uuid.uuid4())
    envelope = Envelope.wrap(event, aggregate_id=event.order_id, occurred_at=timezone.now())
    entry_id = redis_client.xadd(
        settings.EVENT_STREAM,
        {"event_id": str(envelope.event_id), "type": envelope.type, "envelope": envelope.to_json()},
    )
    return entry_id.decode()


def _read_and_die(redis_client, consumer: str) -> None:
    """What a consumer SIGKILLed mid-handler leaves: an entry delivered, never acked."""
    redis_client.xgroup_create(settings.EVENT_STREAM, settings.EVENT_CONSUMER_GROUP, id="0")
    redis_client.xreadgroup(
        settings.EVENT_CONSUMER_GROUP, consumer, {settings.EVENT_STREAM: ">"}, count=10
    )


def _recording_registry(done: list[float]) -> Registry:
    reg = Registry()

    @reg.handles(PickingCompleted)
    def record(envelope, event) -> None:
        done.append(time.monotonic())

    return reg


def _pending(redis_client) -> list[dict]:
    return redis_client.xpending_range(
        settings.EVENT_STREAM, settings.EVENT_CONSUMER_GROUP, min="-", max="+", count=100
    )


def test_entry_of_a_dead_consumer_is_claimed_by_another_after_the_idle_time(
    redis_client,
) -> None:
    # given an entry left pending by a consumer that died
    _publish(redis_client)
    _read_and_die(redis_client, "dead")
    died = time.monotonic()
    done: list[float] = []
    worker = make_worker(_recording_registry(done), consumer="alive", claim_idle_ms=500)

    # when another consumer runs
    run_until(worker, lambda: done, timeout=5)

    # then it took the entry over once it had been idle 500 ms, and finished it
    assert len(done) == 1
    assert done[0] - died >= 0.5
    assert _pending(redis_client) == []


def test_restarted_consumer_takes_back_its_own_pending_entries_first(redis_client) -> None:
    # given an entry left pending by consumer "w1" (killed), no other consumer claiming
    _publish(redis_client)
    _read_and_die(redis_client, "w1")
    done: list[float] = []
    worker = make_worker(
        _recording_registry(done),
        consumer="w1",
        claim_idle_ms=60_000,
        retry_base_ms=100,
        retry_max_ms=100,
    )

    # when "w1" starts again
    worker.run(until=lambda: bool(done) and not _pending(redis_client))

    # then it finished the entry after its backoff, not the 60 s claim idle time
    assert len(done) == 1
    assert worker.stats.processed == 1


def test_entry_delivered_max_attempts_times_is_dead_lettered_without_running(
    redis_client,
) -> None:
    # given an entry whose 3 deliveries all killed consumer "w1" (the third on re-reading)
    entry_id = _publish(redis_client)
    _read_and_die(redis_client, "w1")
    for _ in range(2):
        redis_client.xreadgroup(
            settings.EVENT_CONSUMER_GROUP, "w1", {settings.EVENT_STREAM: "0"}, count=10
        )
    [info] = _pending(redis_client)
    assert info["times_delivered"] == 3
    done: list[float] = []
    worker = make_worker(_recording_registry(done), consumer="w1", max_attempts=3)

    # when "w1" starts again
    worker.run(until=lambda: bool(redis_client.xlen(settings.DEAD_LETTER_STREAM)))

    # then the entry is a dead letter, with 3 attempts, and its handler did not run again
    [(_id, dead)] = redis_client.xrange(settings.DEAD_LETTER_STREAM)
    assert dead[b"source_id"].decode() == entry_id
    assert dead[b"attempts"] == b"3"
    assert done == []
    assert _pending(redis_client) == []


# -- the real processes ------------------------------------------------------------------

ORDERS = 200
CUSTOMERS = 5


def _pending_count(stream: str) -> int:
    summary = cast("dict[str, Any]", get_redis().xpending(stream, settings.EVENT_CONSUMER_GROUP))
    return int(summary["pending"])


@pytest.fixture
def kill_stack(django_db_setup: None) -> Iterator[dict]:
    """A public server and two workers on the test database, claiming after 2 s."""
    namespace = session_namespace("lokaly-kill")
    delete_namespace_keys(namespace)
    env = {**live_environment(namespace), "EVENT_CLAIM_IDLE_MS": "2000"}
    port = free_port()
    logs: dict[str, Path] = {}
    processes: dict[str, subprocess.Popen[bytes]] = {}
    stack: dict[str, Any] = {
        "http": f"http://127.0.0.1:{port}",
        "env": env,
        "logs": logs,
        "procs": processes,
    }
    processes["public"] = spawn(
        "kill-public",
        ["manage_public.py", "serve", "--no-migrate", "--port", str(port), "--workers", "2"],
        {**env, "DJANGO_SETTINGS_MODULE": "lokaly_public.settings.test"},
        logs,
    )
    for name in ("kill-w1", "kill-w2"):
        _start_worker(stack, name)
    try:
        wait_ready(stack["http"], processes, logs)
        yield stack
    finally:
        for proc in processes.values():
            stop(proc)
        delete_namespace_keys(namespace)


def _start_worker(stack: dict, name: str) -> None:
    env = {**stack["env"], "DJANGO_SETTINGS_MODULE": "lokaly_admin.settings.test"}
    args = ["manage_admin.py", "run_worker", "--no-migrate", "--no-notifications"]
    args += ["--consumer", name, "--metrics-port", "0"]
    stack["procs"][name] = spawn(name, args, env, stack["logs"])


def _kill_while_holding_entries(stack: dict, name: str) -> int:
    """SIGKILL worker ``name`` at a moment it holds unacked entries (checked while it is
    frozen with SIGSTOP, so the kill lands exactly then); returns how many it held."""
    proc = stack["procs"][name]
    stream, group = stack["env"]["EVENT_STREAM"], settings.EVENT_CONSUMER_GROUP
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        os.kill(proc.pid, signal.SIGSTOP)
        held = cast(
            "list[dict[str, Any]]",
            get_redis().xpending_range(stream, group, "-", "+", 1000, consumername=name),
        )
        if held:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
            return len(held)
        os.kill(proc.pid, signal.SIGCONT)
        time.sleep(0.005)  # let it read the next batch
    pytest.fail(f"{name} never held an unacked entry")


def test_burst_of_orders_survives_a_worker_killed_mid_burst(kill_stack) -> None:
    # given 5 customers and two products, one that runs out (60 units for ~400 asked)
    store = StoreFactory.create()
    scarce = StockFactory.create(store=store, product=ProductFactory.create(), on_hand=60)
    plenty = StockFactory.create(store=store, product=ProductFactory.create(), on_hand=1000)
    customers = [UserFactory.create() for _ in range(CUSTOMERS)]
    http = kill_stack["http"]
    login = f"{http}/api/auth/token"
    tokens = [
        httpx.post(login, json={"email": c.email, "password": PASSWORD}).json()["access"]
        for c in customers
    ]

    def place(i: int) -> str:
        body = order_body(store.id, (scarce.product_id, 1 + i % 3), (plenty.product_id, 1))
        headers = {"Authorization": f"Bearer {tokens[i % CUSTOMERS]}"}
        response = httpx.post(f"{http}/api/orders", json=body, headers=headers, timeout=30)
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    # when 200 orders arrive and worker 1 is SIGKILLed mid-burst, then a new worker starts
    with ThreadPoolExecutor(max_workers=8) as pool:
        placing = pool.map(place, range(ORDERS))
        wait_until(lambda: Order.objects.count() >= ORDERS // 4, timeout=30)
        held = _kill_while_holding_entries(kill_stack, "kill-w1")
        _start_worker(kill_stack, "kill-w3")
        order_ids = list(placing)

    # then every order ends confirmed or cancelled out of stock
    def settled() -> bool:
        return (
            not Order.objects.filter(pk__in=order_ids)
            .exclude(status__in=["confirmed", "cancelled"])
            .exists()
        )

    wait_until(settled, timeout=40, interval=0.2)
    orders = Order.objects.filter(pk__in=order_ids)
    confirmed = orders.filter(status="confirmed")
    assert held > 0
    assert orders.count() == ORDERS
    assert 0 < confirmed.count() < ORDERS
    assert set(orders.filter(status="cancelled").values_list("cancel_reason", flat=True)) == {
        "out_of_stock"
    }
    # and stock holds exactly what the confirmed orders asked for, no more, no less
    for stock in (scarce, plenty):
        stock.refresh_from_db()
        asked = OrderLine.objects.filter(
            order__in=confirmed, product_id=stock.product_id
        ).aggregate(total=Sum("quantity"))["total"]
        assert stock.reserved == asked
    # and the entries the killed worker held were finished by the others
    stream = kill_stack["env"]["EVENT_STREAM"]
    wait_until(
        lambda: _pending_count(stream) == 0,
        timeout=20,
    )
    assert get_redis().xlen(kill_stack["env"]["DEAD_LETTER_STREAM"]) == 0
    assert Stock.objects.get(pk=scarce.pk).available >= 0
