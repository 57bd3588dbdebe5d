"""Courier location broadcast benchmark: ``POST /api/courier/location`` -> ``courier.location``
on the socket of a customer watching the courier's order.

Usage: ``.venv/bin/python bench/location.py [--couriers 1 20] [--duration 10] [--interval 0.1]``.

It starts the public server (uvicorn, ``PUBLIC_WORKERS`` processes) as a real process
against DATABASE_URL / REDIS_URL (the embedded servers when unset), and makes, through
the domain services, one confirmed order per courier with that courier assigned. For
each scenario every courier posts its location every ``--interval`` seconds (closed
loop: the next update waits for the previous answer and the interval) while the order's
customer watches the order on the socket. Latency runs from just before the POST is
sent to the ``courier.location`` message with that position arriving on the socket.

The load generator shares the machine's cores with the server. Results are printed and
written as JSON to bench/results/ for docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.run import (  # noqa: E402
    Stack,
    free_port,
    make_fixtures,
    percentile,
    setup_django,
    write_results,
)

STORE_LAT, STORE_LNG = 52.37, 4.89


def make_deliveries(store_id: str, products: list[str], couriers: int) -> list[dict[str, str]]:
    """``couriers`` couriers at the store, each assigned one confirmed order of one customer."""
    from django.utils import timezone

    from lokaly_core.accounts.models import Role, User
    from lokaly_core.accounts.tokens import PUBLIC, issue_pair
    from lokaly_core.delivery.models import CourierState, Delivery
    from lokaly_core.domain.delivery import DispatchPolicy, courier_set_shift, dispatch_order
    from lokaly_core.domain.model import orders as o
    from lokaly_core.domain.services import (
        ItemRequest,
        PlaceOrder,
        order_reserve_stock,
        place_order,
    )
    from lokaly_core.orders.uow import DjangoUnitOfWork

    run = uuid.uuid4().hex[:8]
    customer = User(email=f"bench-loc-{run}@lokaly.test", name="Bench", role=Role.CUSTOMER)
    customer.set_unusable_password()
    customer.save()
    customer_token = issue_pair(PUBLIC, customer)["access"]
    rows = []
    for i in range(couriers):
        courier = User(
            email=f"bench-courier-{run}-{i}@lokaly.test", name=f"Courier {i}", role=Role.COURIER
        )
        courier.set_unusable_password()
        courier.save()
        order = place_order(
            uow=DjangoUnitOfWork(),
            clock=timezone.now,
            command=PlaceOrder(
                customer_id=customer.id,
                store_id=uuid.UUID(store_id),
                items=[ItemRequest(uuid.UUID(products[0]), 1)],
                delivery_address=o.Address("Bench 1", "Amsterdam", "1012", STORE_LAT, STORE_LNG),
            ),
            delivery_fee_cents=199,
        )
        order_reserve_stock(uow=DjangoUnitOfWork(), clock=timezone.now, order_id=order.id)
        # Online at the store itself (distance 0): dispatch picks this courier.
        courier_set_shift(
            uow=DjangoUnitOfWork(), clock=timezone.now, courier_id=courier.id, online=True
        )
        CourierState.objects.filter(pk=courier.id).update(lat=STORE_LAT, lng=STORE_LNG)
        dispatch_order(
            uow=DjangoUnitOfWork(), clock=timezone.now, order_id=order.id, policy=DispatchPolicy()
        )
        if not Delivery.objects.filter(order_id=order.id, courier_id=courier.id).exists():
            raise SystemExit(f"order {order.id} was not assigned to the bench courier {i}")
        rows.append(
            {
                "order_id": str(order.id),
                "courier_token": issue_pair(PUBLIC, courier)["access"],
                "customer_token": customer_token,
            }
        )
    return rows


async def scenario(
    base: str, ws_base: str, deliveries: list[dict[str, str]], duration: float, interval: float
) -> dict[str, Any]:
    latencies: list[float] = []
    post_ms: list[float] = []
    lost = 0
    stop_at = time.monotonic() + duration

    async def courier(index: int, d: dict[str, str], session: aiohttp.ClientSession) -> None:
        nonlocal lost
        url = f"{ws_base}/ws/orders/{d['order_id']}/?token={d['customer_token']}"
        async with session.ws_connect(url) as ws:
            snapshot = json.loads((await ws.receive(timeout=10)).data)
            assert snapshot["type"] == "order.snapshot", snapshot
            n = 0
            while time.monotonic() < stop_at:
                n += 1
                # A position that names this update: the socket message echoes it back.
                lat = round(STORE_LAT + index * 0.001 + n * 1e-6, 7)
                sent = time.perf_counter()
                async with session.post(
                    f"{base}/api/courier/location",
                    json={"lat": lat, "lng": STORE_LNG},
                    headers={"Authorization": f"Bearer {d['courier_token']}"},
                ) as response:
                    if response.status != 204:
                        raise SystemExit(f"location update answered {response.status}")
                    post_ms.append((time.perf_counter() - sent) * 1000)
                try:
                    while True:
                        msg = json.loads((await ws.receive(timeout=2)).data)
                        if msg.get("type") == "courier.location" and msg["lat"] == lat:
                            latencies.append((time.perf_counter() - sent) * 1000)
                            break
                except (TimeoutError, TypeError):
                    lost += 1
                await asyncio.sleep(interval)

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(courier(i, d, session) for i, d in enumerate(deliveries)))
    return {
        "couriers": len(deliveries),
        "interval_s": interval,
        "updates": len(latencies),
        "updates_per_s": round(len(latencies) / duration, 1),
        "post_p50_ms": round(percentile(post_ms, 50), 1),
        "p50_ms": round(percentile(latencies, 50), 1),
        "p95_ms": round(percentile(latencies, 95), 1),
        "p99_ms": round(percentile(latencies, 99), 1),
        "max_ms": round(max(latencies), 1) if latencies else None,
        "lost": lost,
    }


async def main_async(
    args: argparse.Namespace, port: int, deliveries: list[dict[str, str]]
) -> list[dict[str, Any]]:
    stack = Stack(port, "wsgi", args.workers, 0)
    try:
        await stack.wait_ready()
        base, ws_base = f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}"
        results = []
        await scenario(base, ws_base, deliveries[:1], 1.0, args.interval)  # warm-up
        for couriers in args.couriers:
            row = await scenario(base, ws_base, deliveries[:couriers], args.duration, args.interval)
            print(
                f"couriers={couriers:>3}: {row['updates_per_s']:>6} updates/s  "
                f"POST p50 {row['post_p50_ms']} ms  socket p50 {row['p50_ms']} ms  "
                f"p95 {row['p95_ms']} ms  p99 {row['p99_ms']} ms  max {row['max_ms']} ms  "
                f"lost {row['lost']}",
                flush=True,
            )
            results.append(row)
        return results
    finally:
        stack.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="Seconds per scenario.")
    parser.add_argument("--interval", type=float, default=0.1, help="Seconds between updates.")
    parser.add_argument("--couriers", type=int, nargs="+", default=[1, 20])
    parser.add_argument("--workers", type=int, default=int(os.environ.get("PUBLIC_WORKERS", "2")))
    args = parser.parse_args()
    port = free_port()
    # The events this process records go to the server's own stream, never the dev one.
    os.environ["EVENT_STREAM"] = f"lokaly-bench-{port}:events"
    os.environ["DEAD_LETTER_STREAM"] = f"lokaly-bench-{port}:dead"
    os.environ["CACHE_KEY_PREFIX"] = f"lokaly-bench-{port}"
    setup_django()
    store_id, products, _tokens = make_fixtures(1)
    deliveries = make_deliveries(store_id, products, max(args.couriers))
    results = asyncio.run(main_async(args, port, deliveries))
    write_results(
        "location",
        {"workers": args.workers, "duration_s": args.duration, "scenarios": results},
    )


if __name__ == "__main__":
    main()
