"""Worker benchmark: events/s with one and two worker processes, and intake to ``confirmed``
latency while one of two workers is SIGKILLed and replaced.

Usage: ``.venv/bin/python bench/worker.py [--orders 1500] [--duration 20] [--workers 1 2]
[--no-kill] [--in-process] [--profile FILE]``.

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

Each throughput run also reports the worker processes' CPU seconds (user + system, psutil)
spent from the first entry read to the drain, per 1,000 orders: on a machine shared with
other loads that is steadier than events/s. ``--in-process`` adds a drain by one
``StreamWorker`` inside this process (real handlers, same stream layout) that also counts
SQL statements and Redis round trips (a pipeline is one) per order; ``--profile FILE``
writes its cProfile.

Same machine, settings and caveats as bench/run.py (DEBUG off, fresh secrets, a stream of
its own per stack, the load generator on the same cores). Results: printed, and JSON in
bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any, cast

import aiohttp
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.run import (  # noqa: E402
    ACCOUNT_POOL,
    Stack,
    confirmed_on_socket,
    cpu_by_pid,
    cpu_used,
    free_port,
    make_fixtures,
    order_body,
    postgres_processes,
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
        for k in queue:
            headers = {"Authorization": f"Bearer {tokens[k % len(tokens)]}"}
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


def cpu_seconds(procs: list[Any]) -> float:
    """User + system CPU of the processes and their children (the worker is a child of
    the process the stack spawned when it runs in a process group)."""
    total = 0.0
    for proc in procs:
        try:
            root = psutil.Process(proc.pid)
            for p in [root, *root.children(recursive=True)]:
                times = p.cpu_times()
                total += times.user + times.system
        except psutil.NoSuchProcess:
            continue
    return total


def postgres_cpu() -> dict[int, float]:
    """CPU seconds of each PostgreSQL process working for the bench database."""
    from django.db import connection

    return cpu_by_pid(postgres_processes(str(connection.settings_dict["NAME"])))


def time_drain(
    stream: str, store_id: str, timeout: float = 600, workers: list[Any] | None = None
) -> dict[str, Any]:
    """How long the workers took to drain the stream, and the CPU they and PostgreSQL
    used meanwhile (``cores``: both together, per second of the drain; the machine's
    cores bound what more workers can add)."""
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
            cpu_at_start = cpu_seconds(workers or [])
            pg_at_start = postgres_cpu()
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
            # both include the polling at the end (idle workers: a blocking read a second)
            worker_cpu = cpu_seconds(workers or []) - cpu_at_start
            # a backend born during the drain counts whole (this process's own polls too)
            pg_cpu = cpu_used(pg_at_start, postgres_cpu())
            return {
                "events": read,
                "seconds": round(seconds, 2),
                "events_per_s": round(read / seconds, 1),
                "worker_cpu_s": round(worker_cpu, 2),
                "postgres_cpu_s": round(pg_cpu, 2),
                "cores": round((worker_cpu + pg_cpu) / seconds, 2),
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
        procs = [spawn_worker(stack, f"bench-{n}") for n in range(1, workers + 1)]
        row = await asyncio.to_thread(time_drain, stream, store_id, workers=procs)
        row.update(workers=workers, orders=args.orders, load=os.getloadavg()[0])
        row["orders_per_s"] = round(args.orders / row["seconds"], 1)
        row["cpu_s_per_1000_orders"] = round(row["worker_cpu_s"] * 1000 / args.orders, 2)
        print(
            f"throughput, {workers} worker(s): {row['events']} events in {row['seconds']} s = "
            f"{row['events_per_s']} events/s ({row['orders_per_s']} orders/s), worker CPU "
            f"{row['cpu_s_per_1000_orders']} s per 1,000 orders, PostgreSQL CPU "
            f"{row['postgres_cpu_s']} s, {row['cores']} cores busy (workers and PostgreSQL), "
            f"load {row['load']:.1f}",
            flush=True,
        )
        return row
    finally:
        stack.stop()


class RoundTrips:
    """Counts this process's SQL statements (a Django execute wrapper) and Redis round
    trips (commands, a pipeline counting once) while ``on``."""

    def __init__(self) -> None:
        self.sql = 0
        self.redis = 0
        self.on = False

    def __call__(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        if self.on:
            self.sql += 1
        return execute(sql, params, many, context)

    def patch_redis(self) -> None:
        import redis

        counter = self
        plain, piped = redis.Redis.execute_command, redis.client.Pipeline.execute

        def execute_command(client: Any, *a: Any, **kw: Any) -> Any:
            if counter.on and not isinstance(client, redis.client.Pipeline):
                counter.redis += 1
            return plain(client, *a, **kw)

        def execute(pipe: Any, *a: Any, **kw: Any) -> Any:
            if counter.on:
                counter.redis += 1
            return piped(pipe, *a, **kw)

        redis.Redis.execute_command = execute_command  # type: ignore[method-assign,assignment]
        redis.client.Pipeline.execute = execute  # type: ignore[method-assign,assignment]


async def in_process(args: argparse.Namespace, fixtures: tuple) -> dict[str, Any]:
    """One StreamWorker in this process drains the backlog: CPU and round trips per order."""
    from django.conf import settings
    from django.db import connection

    import lokaly_worker.handlers  # noqa: F401  (registers the real handlers)
    from lokaly_core.outbox import relay
    from lokaly_core.redis_client import get_redis
    from lokaly_worker.consumer import StreamWorker, WorkerConfig
    from lokaly_worker.registry import registry

    store_id, products, tokens = fixtures
    stack = Stack(free_port(), "wsgi", 2, 0)
    try:
        await stack.wait_ready()
        await preload(f"http://127.0.0.1:{stack.port}", store_id, products, tokens, args.orders)
        stream = stream_of(stack)
        while get_redis().xlen(stream) < args.orders:
            await asyncio.sleep(0.05)
        # the events the handlers emit go to the stack's stream, as run_worker's would
        settings.EVENT_STREAM = stream
        settings.DEAD_LETTER_STREAM = f"lokaly-bench-{stack.port}:dead"
        worker = StreamWorker(
            WorkerConfig.from_settings("bench-in-process", stream=stream, group=GROUP), registry
        )
        counter = RoundTrips()
        counter.patch_redis()
        profile = cProfile.Profile() if args.profile else None
        checked = [0.0]

        def drained() -> bool:
            if time.monotonic() - checked[0] < 0.25:
                return False
            checked[0] = time.monotonic()
            counter.on = False
            try:
                info = group_info(stream)
                return bool(info and info["lag"] == 0 and info["pending"] == 0)
            finally:
                counter.on = True

        def drain() -> tuple[float, float]:
            with connection.execute_wrapper(counter):
                started, cpu = time.monotonic(), time.process_time()
                counter.on = True
                if profile:
                    profile.enable()
                worker.run(until=drained)
                if profile:
                    profile.disable()
                counter.on = False
                relay.stop_publisher()
                return time.monotonic() - started, time.process_time() - cpu

        seconds, cpu = await asyncio.to_thread(drain)
        if profile:
            profile.dump_stats(args.profile)
        events = worker.stats.processed
        row = {
            "mode": "in-process",
            "orders": args.orders,
            "events": events,
            "seconds": round(seconds, 2),
            "events_per_s": round(events / seconds, 1),
            "orders_per_s": round(args.orders / seconds, 1),
            "cpu_s_per_1000_orders": round(cpu * 1000 / args.orders, 2),
            "sql_per_order": round(counter.sql / args.orders, 2),
            "redis_round_trips_per_order": round(counter.redis / args.orders, 2),
            "load": os.getloadavg()[0],
        }
        print(f"in-process, 1 worker: {row}", flush=True)
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
    results: dict[str, Any] = {}
    if args.in_process:
        results["in_process"] = await in_process(args, fixtures)
    results["throughput"] = [await throughput(n, args, fixtures) for n in args.workers]
    if not args.no_kill:
        results["kill_and_replace"] = await kill_and_replace(args, fixtures)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=1500, help="Orders pre-loaded per run.")
    parser.add_argument("--duration", type=float, default=20.0, help="Seconds of the kill run.")
    parser.add_argument("--socket-concurrency", type=int, default=4)
    parser.add_argument(
        "--workers", type=int, nargs="*", default=[1, 2], help="Throughput runs (processes)."
    )
    parser.add_argument("--no-kill", action="store_true", help="Skip the kill-and-replace run.")
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="Also drain with one worker in this process, counting SQL and Redis round trips.",
    )
    parser.add_argument("--profile", help="cProfile output file of the in-process drain.")
    args = parser.parse_args()
    setup_django()
    results = asyncio.run(main_async(args, make_fixtures(16, ACCOUNT_POOL)))
    write_results("worker", results)


if __name__ == "__main__":
    main()
