"""Order sockets at scale: fan-out to many watchers, a connect/close storm, handshake CPU.

Usage: ``.venv/bin/python bench/sockets.py {fanout,storm,cpu,all} [--sockets 1000] [--workers 2]``.

It starts the public server (``manage_public.py serve``, uvicorn, ``--workers``
processes) as a real process against DATABASE_URL / REDIS_URL (the embedded servers
when unset), makes a customer with one pending order through the domain services, then:

- ``fanout``: ``--sockets`` watchers of that order connect (``--concurrency`` at a time)
  and each waits for its snapshot; then the order is confirmed in the database and the
  change is broadcast as the worker does it (``lokaly_core.broadcast``). Latency per
  watcher runs from just before ``group_send`` to the message arriving (p50/p99/max),
  and how many got it within 10 s.
- ``storm``: ``--sockets`` sockets connect at once, read their snapshot and close.
  Counted: handshake errors by HTTP status, other errors, then what the server
  processes still hold in Redis (polled until it settles or 10 s pass): subscriptions
  of their Redis connections (CLIENT LIST, matched to the server's sockets by port),
  subscribers of the order's group channel (PUBSUB NUMSUB) and members of the order's
  group key (the core layer's sorted set).
- ``cpu``: ``--sockets`` sockets connect (``--concurrency`` at a time) with ``since=1``
  as the apps do and read the snapshot; then all close. CPU of the server processes
  (psutil, user + system, the idle rate subtracted) per socket, for each phase.

The load generator (aiohttp, one asyncio process) shares the machine's cores with the
server. Results are printed and written as JSON to bench/results/ for docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import psutil

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

SETTLE_S = 10.0

# ``--layer``: the channel layer of the server and of this process (the broadcaster).
LAYERS: dict[str, dict[str, Any]] = {
    "pubsub": {"BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer", "CONFIG": {}},
    "core": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {}},
}


class LayerStack(Stack):
    """The bench stack with the server on another channel layer than the settings' (a
    settings module of its own in a temporary directory; nothing in the tree changes)."""

    layer: str | None = None

    def _spawn(self, name: str, args: list[str], env: dict[str, str]) -> Any:
        if self.layer is not None:
            directory = Path(f"/tmp/s-bench-layer-{os.getpid()}")  # noqa: S108 - ours alone
            directory.mkdir(exist_ok=True)
            (directory / "bench_layer_settings.py").write_text(
                "from lokaly_public.settings.base import *  # noqa: F403\n"
                f"CHANNEL_LAYERS = {{'default': {layer_config(self.layer)!r}}}\n"
            )
            env = {
                **env,
                "DJANGO_SETTINGS_MODULE": "bench_layer_settings",
                "PYTHONPATH": f"{directory}:{ROOT}",
            }
        return super()._spawn(name, args, env)


def layer_config(name: str) -> dict[str, Any]:
    config = LAYERS[name]
    return {**config, "CONFIG": {"hosts": [os.environ["REDIS_URL"]], **config["CONFIG"]}}


def raise_fd_limit(wanted: int = 65536) -> None:
    """Each socket is a descriptor here and in the server (its processes inherit the limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= wanted:
        return
    try:  # root may raise the hard limit too
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, max(hard, wanted)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def make_order(store_id: str, products: list[str]) -> dict[str, str]:
    """A customer with one pending order (status_version 1) and an access token."""
    from django.utils import timezone

    from lokaly_core.accounts.models import Role, User
    from lokaly_core.accounts.tokens import PUBLIC, issue_pair
    from lokaly_core.domain.model import orders as o
    from lokaly_core.domain.services import ItemRequest, PlaceOrder, place_order
    from lokaly_core.orders.uow import DjangoUnitOfWork

    customer = User(
        email=f"bench-ws-{uuid.uuid4().hex[:8]}@lokaly.test", name="Bench", role=Role.CUSTOMER
    )
    customer.set_unusable_password()
    customer.save()
    order = place_order(
        uow=DjangoUnitOfWork(),
        clock=timezone.now,
        command=PlaceOrder(
            customer_id=customer.id,
            store_id=uuid.UUID(store_id),
            items=[ItemRequest(uuid.UUID(p), 1) for p in products[:2]],
            delivery_address=o.Address("Bench 1", "Amsterdam", "1012", 52.37, 4.89),
        ),
        delivery_fee_cents=199,
    )
    return {"order_id": str(order.id), "token": issue_pair(PUBLIC, customer)["access"]}


def confirm_and_broadcast(order_id: str) -> float:
    """Confirm the order, then broadcast its change as the worker does; returns the
    ``perf_counter`` just before ``group_send``."""
    from django.utils import timezone

    from lokaly_core.broadcast import get_broadcaster
    from lokaly_core.domain.services import order_reserve_stock
    from lokaly_core.events import OrderStatusChanged
    from lokaly_core.orders.models import Order, OrderStatusChange
    from lokaly_core.orders.realtime import order_group, status_changed_message
    from lokaly_core.orders.uow import DjangoUnitOfWork

    order_reserve_stock(uow=DjangoUnitOfWork(), clock=timezone.now, order_id=uuid.UUID(order_id))
    change = OrderStatusChange.objects.filter(order_id=order_id).order_by("-status_version")[0]
    customer_id = Order.objects.values_list("customer_id", flat=True).get(pk=order_id)
    event = OrderStatusChanged(
        order_id=uuid.UUID(order_id),
        customer_id=customer_id,
        status=change.status,
        previous_status=change.previous_status,
        status_version=change.status_version,
        occurred_at=change.occurred_at,
        reason=change.reason,
    )
    broadcaster = get_broadcaster()
    started = time.perf_counter()
    broadcaster.group_send(order_group(order_id), status_changed_message(event))
    return started


# -- the server's footprint: CPU and what it holds in Redis ---------------------------------


def server_processes(stack: Stack) -> list[psutil.Process]:
    root = psutil.Process(stack.procs[0].pid)
    return [root, *root.children(recursive=True)]


def server_cpu(stack: Stack) -> float:
    total = 0.0
    for proc in server_processes(stack):
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def redis_client() -> Any:
    import redis

    return redis.Redis.from_url(os.environ["REDIS_URL"])


def server_redis(stack: Stack, order_id: str) -> dict[str, int]:
    """What the server processes hold in Redis: connections, channel subscriptions, the
    order group's subscribers (pubsub layer) and members (core layer)."""
    from django.conf import settings

    r = redis_client()
    redis_port = r.connection_pool.connection_kwargs.get("port", 6379)
    ports = set()
    for proc in server_processes(stack):
        try:
            for conn in proc.net_connections(kind="tcp"):
                if conn.raddr and conn.raddr.port == redis_port:
                    ports.add(conn.laddr.port)
        except psutil.NoSuchProcess:
            continue
    connections = subscriptions = 0
    for client in r.client_list():
        if int(client["addr"].rsplit(":", 1)[1]) in ports:
            connections += 1
            subscriptions += int(client.get("sub", 0)) + int(client.get("psub", 0))
    layer: Any = settings.CHANNEL_LAYERS["default"]
    prefix = layer.get("CONFIG", {}).get("prefix", "asgi")
    group = f"order.{order_id}"
    numsub = r.pubsub_numsub(f"{prefix}__group__{group}")[0][1]
    members = r.zcard(f"{prefix}:group:{group}")
    r.close()
    return {
        "redis_connections": connections,
        "subscriptions": subscriptions,
        "group_subscribers": int(numsub),
        "group_members": int(members),
    }


async def settle(stack: Stack, order_id: str, baseline: dict[str, int]) -> dict[str, Any]:
    """Poll the server's Redis footprint until it is back to ``baseline`` (or SETTLE_S)."""
    started = time.monotonic()
    while True:
        now = await asyncio.to_thread(server_redis, stack, order_id)
        back = (
            now["subscriptions"] <= baseline["subscriptions"]
            and now["group_subscribers"] == 0
            and now["group_members"] == 0
        )
        if back or time.monotonic() - started > SETTLE_S:
            return {
                **now,
                "stale_subscriptions": max(0, now["subscriptions"] - baseline["subscriptions"]),
                "settled_after_s": round(time.monotonic() - started, 2) if back else None,
            }
        await asyncio.sleep(0.1)


# -- the clients ----------------------------------------------------------------------------


def socket_url(ws_base: str, order: dict[str, str], since: int | None = None) -> str:
    query = f"token={order['token']}" + (f"&since={since}" if since is not None else "")
    return f"{ws_base}/ws/orders/{order['order_id']}/?{query}"


async def open_watcher(
    session: aiohttp.ClientSession, url: str, errors: Counter[str]
) -> aiohttp.ClientWebSocketResponse | None:
    try:
        ws = await session.ws_connect(url, timeout=aiohttp.ClientWSTimeout(ws_close=10))
        msg = await ws.receive(timeout=30)
        if msg.type != aiohttp.WSMsgType.TEXT or json.loads(msg.data)["type"] != "order.snapshot":
            errors[f"no snapshot ({msg.type.name} {msg.extra or ''})".strip()] += 1
            await ws.close()
            return None
        return ws
    except aiohttp.WSServerHandshakeError as exc:
        errors[f"HTTP {exc.status}"] += 1
    except Exception as exc:  # counted, not raised: the bench reports every failure
        errors[type(exc).__name__] += 1
    return None


async def open_many(
    session: aiohttp.ClientSession, url: str, n: int, concurrency: int, errors: Counter[str]
) -> list[aiohttp.ClientWebSocketResponse]:
    gate = asyncio.Semaphore(concurrency)

    async def one() -> aiohttp.ClientWebSocketResponse | None:
        async with gate:
            return await open_watcher(session, url, errors)

    return [ws for ws in await asyncio.gather(*(one() for _ in range(n))) if ws is not None]


def new_session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, force_close=True))


# -- the scenarios --------------------------------------------------------------------------


async def fanout(stack: Stack, ws_base: str, order: dict[str, str], args: Any) -> dict[str, Any]:
    errors: Counter[str] = Counter()
    async with new_session() as session:
        watchers = await open_many(
            session, socket_url(ws_base, order), args.sockets, args.concurrency, errors
        )
        arrived: list[float] = []

        async def wait_change(ws: aiohttp.ClientWebSocketResponse) -> None:
            while True:
                msg = await ws.receive(timeout=SETTLE_S)
                if msg.type != aiohttp.WSMsgType.TEXT:
                    return
                if json.loads(msg.data).get("type") == "order.status_changed":
                    arrived.append(time.perf_counter())
                    return

        waits = [asyncio.ensure_future(wait_change(ws)) for ws in watchers]
        await asyncio.sleep(0.5)  # every watcher is reading before the change goes out
        started = await asyncio.to_thread(confirm_and_broadcast, order["order_id"])
        await asyncio.wait(waits, timeout=SETTLE_S)
        latencies = [(t - started) * 1000 for t in arrived]
        await asyncio.gather(*(ws.close() for ws in watchers), return_exceptions=True)
    return {
        "watchers": len(watchers),
        "received": len(latencies),
        "missed": len(watchers) - len(latencies),
        "p50_ms": round(percentile(latencies, 50), 1),
        "p99_ms": round(percentile(latencies, 99), 1),
        "max_ms": round(max(latencies), 1) if latencies else None,
        "connect_errors": dict(errors),
    }


async def storm(stack: Stack, ws_base: str, order: dict[str, str], args: Any) -> dict[str, Any]:
    baseline = await asyncio.to_thread(server_redis, stack, order["order_id"])
    errors: Counter[str] = Counter()
    peak = dict(baseline)
    done = asyncio.Event()

    async def sample() -> None:
        while not done.is_set():
            now = await asyncio.to_thread(server_redis, stack, order["order_id"])
            for key, value in now.items():
                peak[key] = max(peak[key], value)
            await asyncio.sleep(0.2)

    sampler = asyncio.ensure_future(sample())
    started = time.perf_counter()
    async with new_session() as session:

        async def one() -> None:
            ws = await open_watcher(session, socket_url(ws_base, order, since=1), errors)
            if ws is not None:
                await ws.close()

        await asyncio.gather(*(one() for _ in range(args.sockets)))
    elapsed = time.perf_counter() - started
    done.set()
    await sampler
    after = await settle(stack, order["order_id"], baseline)
    return {
        "sockets": args.sockets,
        "ok": args.sockets - sum(errors.values()),
        "errors": dict(errors),
        "http_500": errors.get("HTTP 500", 0),
        "elapsed_s": round(elapsed, 2),
        "before": baseline,
        "peak": peak,
        "after": after,
    }


async def cpu(stack: Stack, ws_base: str, order: dict[str, str], args: Any) -> dict[str, Any]:
    idle_from, idle_t = server_cpu(stack), time.perf_counter()
    await asyncio.sleep(2)
    idle_rate = (server_cpu(stack) - idle_from) / (time.perf_counter() - idle_t)
    baseline = await asyncio.to_thread(server_redis, stack, order["order_id"])
    errors: Counter[str] = Counter()
    async with new_session() as session:
        cpu0, t0 = server_cpu(stack), time.perf_counter()
        watchers = await open_many(
            session, socket_url(ws_base, order, since=1), args.sockets, args.concurrency, errors
        )
        cpu1, t1 = server_cpu(stack), time.perf_counter()
        await asyncio.gather(*(ws.close() for ws in watchers), return_exceptions=True)
        after = await settle(stack, order["order_id"], baseline)
        cpu2, t2 = server_cpu(stack), time.perf_counter()
    n = max(1, len(watchers))
    connect_ms = (cpu1 - cpu0 - idle_rate * (t1 - t0)) / n * 1000
    close_ms = (cpu2 - cpu1 - idle_rate * (t2 - t1)) / n * 1000
    return {
        "sockets": len(watchers),
        "errors": dict(errors),
        "idle_cpu_pct": round(idle_rate * 100, 2),
        "connect_snapshot_cpu_ms": round(connect_ms, 3),
        "close_cpu_ms": round(close_ms, 3),
        "total_cpu_ms": round(connect_ms + close_ms, 3),
        "connect_wall_s": round(t1 - t0, 2),
        "after": after,
    }


SCENARIOS = {"fanout": fanout, "storm": storm, "cpu": cpu}


async def main_async(args: argparse.Namespace, port: int, order: dict[str, str]) -> dict[str, Any]:
    LayerStack.layer = None if args.layer == "settings" else args.layer
    stack = LayerStack(port, "wsgi", args.workers, 0)
    try:
        await stack.wait_ready()
        ws_base = f"ws://127.0.0.1:{port}"
        async with new_session() as session:  # warm-up: imports, connections, caches
            await asyncio.gather(
                *(
                    ws.close()
                    for ws in await open_many(
                        session, socket_url(ws_base, order), 20, 10, Counter()
                    )
                )
            )
        results: dict[str, Any] = {}
        names = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
        # fanout confirms the order: it runs last, so the others see a pending order.
        for name in sorted(names, key=lambda n: n == "fanout"):
            load = os.getloadavg()[0]
            row = await SCENARIOS[name](stack, ws_base, order, args)
            row["load_1m_before"] = round(load, 2)
            print(f"{name}: {json.dumps(row)}", flush=True)
            results[name] = row
        return results
    finally:
        stack.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenario", choices=[*SCENARIOS, "all"], help="What to measure.")
    parser.add_argument("--sockets", type=int, default=1000, help="Sockets (watchers).")
    parser.add_argument(
        "--concurrency", type=int, default=50, help="Handshakes in flight (fanout, cpu)."
    )
    parser.add_argument("--workers", type=int, default=int(os.environ.get("PUBLIC_WORKERS", "2")))
    parser.add_argument(
        "--layer",
        choices=["settings", *LAYERS],
        default="settings",
        help="Channel layer: the settings' (default) or channels_redis' pubsub / core "
        "with their default options, for comparison.",
    )
    parser.add_argument("--label", default="", help="Stored with the results (e.g. before).")
    args = parser.parse_args()
    raise_fd_limit()
    port = free_port()
    # The events this process records go to the server's own stream, never the dev one.
    os.environ["EVENT_STREAM"] = f"lokaly-bench-{port}:events"
    os.environ["DEAD_LETTER_STREAM"] = f"lokaly-bench-{port}:dead"
    os.environ["CACHE_KEY_PREFIX"] = f"lokaly-bench-{port}"
    setup_django()
    if args.layer != "settings":
        from django.conf import settings

        settings.CHANNEL_LAYERS = {"default": layer_config(args.layer)}
    store_id, products, _tokens = make_fixtures(0)
    order = make_order(store_id, products)
    results = asyncio.run(main_async(args, port, order))
    write_results(
        "sockets",
        {
            "label": args.label,
            "workers": args.workers,
            "sockets": args.sockets,
            "concurrency": args.concurrency,
            "layer": _layer_backend(),
            **results,
        },
    )


def _layer_backend() -> str:
    from django.conf import settings

    return str(settings.CHANNEL_LAYERS["default"]["BACKEND"])


if __name__ == "__main__":
    main()
