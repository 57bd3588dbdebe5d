"""Worker benchmark: events/s with one and two worker processes, and intake to ``confirmed``
latency while one of two workers is SIGKILLed and replaced.

Usage: ``.venv/bin/python bench/worker.py [--orders 1500] [--duration 20]``.

1. **Throughput**: the public server runs alone while ``--orders`` orders are placed over
   HTTP (16 at a time), so their ``order.created`` events wait on the stream; then 1 (and,
   on a fresh stream, 2) ``run_worker`` processes start and the drain is timed, from the
   first entry the consumer group reads to the moment no order is pending and the group
   has neither lag nor pending entries (held for 0.5 s, which is not counted). Events are
   every entry the group read: the orders' ``order.created`` and what their handling
   emitted (``inventory.reserved``, ``order.status_changed``, ...).
2. **Kill and replace**: public server and two workers; 4 customers each order and wait
   on the socket for ``confirmed`` (as ``bench/run.py``) for ``--duration`` s; a third of
   the way in, worker 1 is SIGKILLed and at once started again under the same consumer
   name (what a supervisor or ``restart: unless-stopped`` does; in a container the
   default name, host-pid, is the same again), so it first drains what it had read.
   A baseline run without the kill is measured first on the same stack.

Same machine, settings and caveats as bench/run.py (DEBUG off, fresh secrets, a stream of
its own per stack, the load generator on the same cores). Results: printed, and JSON in
bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any, cast

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.run import (  # noqa: E402
    Stack,
    confirmed_on_socket,
    free_port,
    make_fixtures,
    order_body,
    setup_django,
    write_results,
)

GROUP = "lokaly-worker"


def stream_of(stack: Stack) -> str:
    return f"lokaly-bench-{stack.port}:events"  # as Stack names it


def spawn_worker(stack: Stack, name: str) -> Any:
    env = {
        **os.environ,
        "EVENT_STREAM": stream_of(stack),
        "DEAD_LETTER_STREAM": f"lokaly-bench-{stack.port}:dead",
        "CACHE_KEY_PREFIX": f"lokaly-bench-{stack.port}",
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    args = ["manage_admin.py", "run_worker", "--no-migrate", "--consumer", name]
    proc = stack._spawn(name, [*args, "--metrics-port", "0"], env)
    stack.procs.append(proc)
    return proc


async def preload(base: str, store_id: str, products: list[str], tokens: list[str], n: int) -> None:
    queue = iter(range(n))

    async def customer(index: int, session: aiohttp.ClientSession) -> None:
        headers = {"Authorization": f"Bearer {tokens[index % len(tokens)]}"}
        for k in queue:
            async with session.post(
                f"{base}/api/orders", json=order_body(store_id, products, k), headers=headers
            ) as response:
                assert response.status == 201, await response.text()

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(customer(i, session) for i in range(16)))


def group_info(stream: str) -> dict[str, Any] | None:
    from lokaly_core.redis_client import get_redis

    # redis-py 6.4 types the reply Awaitable | Any (lokaly_core.redis_client).
    groups = cast("list[dict[str, Any]]", get_redis().xinfo_groups(stream))
    for group in groups:
        if group["name"] in (GROUP, GROUP.encode()):
            return group
    return None


def time_drain(stream: str, store_id: str, timeout: float = 600) -> dict[str, Any]:
    from django.db import close_old_connections

    from lokaly_core.orders.models import Order

    deadline = time.monotonic() + timeout
    first_read: float | None = None
    quiet_since: float | None = None
    while time.monotonic() < deadline:
        now = time.monotonic()
        info = group_info(stream)
        read = int(info.get("entries-read") or 0) if info else 0
        if first_read is None and read > 0:
            first_read = now
        done = (
            info is not None
            and read > 0
            and info["lag"] == 0
            and info["pending"] == 0
            and not Order.objects.filter(store_id=store_id, status="pending").exists()
        )
        close_old_connections()
        if not done:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = now
        elif now - quiet_since >= 0.5:
            assert first_read is not None  # done needs read > 0, which set it
            seconds = quiet_since - first_read
            return {
                "events": read,
                "seconds": round(seconds, 2),
                "events_per_s": round(read / seconds, 1),
            }
        time.sleep(0.02)
    raise SystemExit("the workers did not drain the stream; see bench/results/*.log")


async def throughput(workers: int, args: argparse.Namespace, fixtures: tuple) -> dict[str, Any]:
    store_id, products, tokens = fixtures
    stack = Stack(free_port(), "wsgi", 2, 0)
    try:
        await stack.wait_ready()
        base = f"http://127.0.0.1:{stack.port}"
        await preload(base, store_id, products, tokens, args.orders)
        from lokaly_core.redis_client import get_redis

        stream = stream_of(stack)
        while get_redis().xlen(stream) < args.orders:  # the publishers have sent them all
            await asyncio.sleep(0.05)
        for n in range(1, workers + 1):
            spawn_worker(stack, f"bench-{n}")
        row = await asyncio.to_thread(time_drain, stream, store_id)
        row.update(workers=workers, orders=args.orders)
        row["orders_per_s"] = round(args.orders / row["seconds"], 1)
        print(
            f"throughput, {workers} worker(s): {row['events']} events in {row['seconds']} s = "
            f"{row['events_per_s']} events/s ({row['orders_per_s']} orders/s)",
            flush=True,
        )
        return row
    finally:
        stack.stop()


async def kill_and_replace(args: argparse.Namespace, fixtures: tuple) -> dict[str, Any]:
    store_id, products, tokens = fixtures
    stack = Stack(free_port(), "wsgi", 2, 0)
    victim = spawn_worker(stack, "bench-1")
    spawn_worker(stack, "bench-2")
    try:
        await stack.wait_ready()
        await asyncio.sleep(3)  # the workers are up (they have no health endpoint)
        base, ws_base = f"http://127.0.0.1:{stack.port}", f"ws://127.0.0.1:{stack.port}"
        run = (base, ws_base, store_id, products, tokens, args.socket_concurrency)
        baseline = await confirmed_on_socket(*run, args.duration / 2)
        print(f"baseline (2 workers, no kill): {baseline}", flush=True)

        async def kill_later() -> None:
            await asyncio.sleep(args.duration / 3)
            os.killpg(victim.pid, signal.SIGKILL)
            spawn_worker(stack, "bench-1")
            print("worker bench-1 SIGKILLed and started again", flush=True)

        killed, _ = await asyncio.gather(confirmed_on_socket(*run, args.duration), kill_later())
        print(f"with bench-1 killed and replaced: {killed}", flush=True)
        return {"baseline": baseline, "killed": killed}
    finally:
        stack.stop()


async def main_async(args: argparse.Namespace, fixtures: tuple) -> dict[str, Any]:
    return {
        "throughput": [await throughput(n, args, fixtures) for n in (1, 2)],
        "kill_and_replace": await kill_and_replace(args, fixtures),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=1500, help="Orders pre-loaded per run.")
    parser.add_argument("--duration", type=float, default=20.0, help="Seconds of the kill run.")
    parser.add_argument("--socket-concurrency", type=int, default=4)
    args = parser.parse_args()
    setup_django()
    results = asyncio.run(main_async(args, make_fixtures(16)))
    write_results("worker", results)


if __name__ == "__main__":
    main()
