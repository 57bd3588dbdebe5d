"""Order intake benchmark against the real servers: orders/s, latency, confirmed-on-socket.

Usage: ``make bench`` or ``.venv/bin/python bench/run.py [--duration 10] [--stack wsgi|asgi]``.

It starts the public server (uvicorn, ``PUBLIC_WORKERS`` processes) and one worker as
real processes against DATABASE_URL / REDIS_URL (the embedded servers when unset), makes
a bench store with plenty of stock and customers with access tokens, then measures:

1. order intake (POST /api/orders) at 1, 8 and 32 concurrent customers, each customer
   sending its next order as soon as the previous one is answered (closed loop);
2. intake to ``confirmed`` seen on the socket: after each 201 the customer opens
   ``/ws/orders/{id}/?since=1`` and waits for ``status: confirmed``; the latency runs
   from the 201 arriving to the confirmed message arriving (WebSocket handshake included).

The load generator (aiohttp, asyncio) shares the machine's cores with the servers, so
figures are a floor for what the servers do on dedicated cores. Results are printed and
written as JSON to bench/results/ for docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def write_results(kind: str, record: dict[str, Any]) -> Path:
    """``record`` with the time and the machine, as bench/results/<kind>-<unix time>.json."""
    out = ROOT / "bench" / "results" / f"{kind}-{int(time.time())}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    full = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        **record,
    }
    out.write_text(json.dumps(full, indent=2))
    print(f"written: {out.relative_to(ROOT)}")
    return out


def postgres_processes(database: str) -> list[Any]:
    """The PostgreSQL server's processes working for ``database``: its backends, and the
    server's own background processes (the WAL writer, the checkpointer...), not the
    backends of other databases (a pgbench run's, say)."""
    import psutil

    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        name = proc.info["name"] or ""
        if name.startswith("postgres") or cmdline.startswith("postgres:"):
            if f" {database} " in cmdline or not re.search(r"postgres: \S+ \S+ ", cmdline):
                found.append(proc)
    return found


def cpu_by_pid(procs: list[Any]) -> dict[int, float]:
    """User + system CPU seconds of each process still running."""
    import psutil

    sampled = {}
    for proc in procs:
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        sampled[proc.pid] = times.user + times.system
    return sampled


def cpu_used(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds used between two ``cpu_by_pid`` samples; a process born in between
    counts whole."""
    return sum(t - before.get(pid, 0.0) for pid, t in after.items())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def setup_django() -> None:
    # Measured as in production: DEBUG off (Django then keeps no per-query log), so the
    # servers need real secrets; fresh ones per run, shared by this process (which mints
    # the customers' tokens) and the servers it starts.
    os.environ["DEBUG"] = "0"
    os.environ.setdefault("MAX_OPEN_ORDERS_PER_CUSTOMER", BENCH_MAX_OPEN_ORDERS)
    for name in ("DJANGO_SECRET_KEY", "PUBLIC_JWT_SECRET", "ADMIN_JWT_SECRET"):
        os.environ.setdefault(name, secrets.token_urlsafe(48))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lokaly_public.settings.base")
    import django

    django.setup()
    os.environ.setdefault("DATABASE_URL", _settings().DATABASE_URL)
    os.environ.setdefault("REDIS_URL", _settings().REDIS_URL)


def _settings() -> Any:
    from django.conf import settings

    return settings


# Each order of a closed-loop customer is placed from the next account of a pool, so that
# no account has more than a few orders open (the intake's MAX_OPEN_ORDERS_PER_CUSTOMER
# check then counts a few rows, as for a real customer; one account ordering thousands of
# times would meet the limit, and without one would make the count scan them all).
ACCOUNT_POOL = 2_000
# The servers' limit for a bench: above what the pool's accounts reach in a long run
# (orders / ACCOUNT_POOL), and the count stops there (lokaly_core/catalog/repositories.py).
BENCH_MAX_OPEN_ORDERS = "50"


def pool_token(tokens: list[str], customer: int, n: int, customers: int) -> str:
    """The account of closed-loop ``customer``'s ``n``-th order: the pool round robin."""
    return tokens[(customer + n * customers) % len(tokens)]


def make_fixtures(customers: int, accounts: int = 0) -> tuple[str, list[str], list[str]]:
    """A store with 5 products of ample stock, and ``max(customers, accounts)`` access
    tokens, each of its own customer account and login session."""
    from lokaly_core.accounts.models import LoginSession, Role, SessionRealm, User
    from lokaly_core.accounts.tokens import PUBLIC, issue_pair
    from lokaly_core.catalog.models import Product, Store
    from lokaly_core.inventory.models import Stock

    subprocess.run(
        [sys.executable, "manage_admin.py", "migrate_locked", "--verbosity", "0"],
        cwd=ROOT,
        check=True,
    )
    run = uuid.uuid4().hex[:8]
    store = Store.objects.create(name=f"Bench {run}", address="Bench", lat=52.37, lng=4.89)
    products = []
    for i in range(5):
        product = Product.objects.create(
            sku=f"BENCH-{run}-{i}", name=f"Bench {i}", price_cents=100 + i
        )
        Stock.objects.create(store=store, product=product, on_hand=10_000_000)
        products.append(str(product.id))
    users = []
    for i in range(max(customers, accounts)):
        user = User(email=f"bench-{run}-{i}@lokaly.test", name=f"Bench {i}", role=Role.CUSTOMER)
        user.set_unusable_password()
        users.append(user)
    User.objects.bulk_create(users, batch_size=1000)
    sessions = LoginSession.objects.bulk_create(
        [LoginSession(user=user, realm=SessionRealm.PUBLIC) for user in users], batch_size=1000
    )
    tokens = [
        issue_pair(PUBLIC, user, session_id=session.pk)["access"]
        for user, session in zip(users, sessions, strict=True)
    ]
    return str(store.id), products, tokens


def wait_drained(store_id: str, timeout: float = 300) -> float:
    """Seconds until the worker has decided every bench order (none left pending)."""
    from django.db import close_old_connections

    from lokaly_core.orders.models import Order

    started = time.monotonic()
    while Order.objects.filter(store_id=store_id, status="pending").exists():
        if time.monotonic() - started > timeout:
            raise SystemExit("the worker did not drain its backlog; see bench/results/worker.log")
        time.sleep(0.1)
    close_old_connections()
    return time.monotonic() - started


class Stack:
    def __init__(self, port: int, http_stack: str, workers: int, worker_processes: int) -> None:
        env = {
            **os.environ,
            "PUBLIC_RATE_LIMIT": "100000000/m",  # one client IP sends everything here
            "WS_MAX_SOCKETS_PER_USER": "100000000",  # one customer may watch with them all
            "PUBLIC_HTTP_STACK": http_stack,
            # A stream of its own: no other worker on this Redis can take the bench's events.
            "EVENT_STREAM": f"lokaly-bench-{port}:events",
            "DEAD_LETTER_STREAM": f"lokaly-bench-{port}:dead",
            "CACHE_KEY_PREFIX": f"lokaly-bench-{port}",
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
        }
        self.port = port
        self.logs = ROOT / "bench" / "results"
        self.logs.mkdir(parents=True, exist_ok=True)
        env.pop("DJANGO_SETTINGS_MODULE", None)  # each manage_*.py picks its own
        self.procs = [
            self._spawn(
                "public",
                [
                    "manage_public.py",
                    "serve",
                    "--no-migrate",
                    "--port",
                    str(port),
                    "--workers",
                    str(workers),
                ],
                env,
            ),
            *(
                self._spawn(f"worker-{n}", ["manage_admin.py", "run_worker", "--no-migrate"], env)
                for n in range(1, worker_processes + 1)
            ),
        ]

    def _spawn(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{name}.log").open("wb")
        return subprocess.Popen(
            [sys.executable, *args],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    async def wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                try:
                    async with session.get(f"http://127.0.0.1:{self.port}/health/ready") as r:
                        if r.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.2)
        raise SystemExit(f"servers did not become ready; see {self.logs}/*.log")

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


def order_body(store_id: str, products: list[str], n: int) -> dict[str, Any]:
    return {
        "store_id": store_id,
        "items": [
            {"product_id": products[(n + k) % len(products)], "quantity": 1} for k in range(2)
        ],
        "delivery_address": {
            "line1": "Damrak 1",
            "city": "Amsterdam",
            "postal_code": "1012 LG",
            "lat": 52.37,
            "lng": 4.89,
        },
    }


async def intake(
    base: str,
    store_id: str,
    products: list[str],
    tokens: list[str],
    concurrency: int,
    duration: float,
) -> dict[str, Any]:
    latencies: list[float] = []
    errors: dict[int, int] = {}
    connector = aiohttp.TCPConnector(limit=concurrency * 2)
    stop_at = time.monotonic() + duration

    async def customer(index: int, session: aiohttp.ClientSession) -> None:
        n = 0
        while time.monotonic() < stop_at:
            headers = {
                "Authorization": f"Bearer {pool_token(tokens, index, n, concurrency)}"
            }
            started = time.perf_counter()
            async with session.post(
                f"{base}/api/orders", json=order_body(store_id, products, n), headers=headers
            ) as response:
                await response.read()
                if response.status == 201:
                    latencies.append((time.perf_counter() - started) * 1000)
                else:
                    errors[response.status] = errors.get(response.status, 0) + 1
            n += 1

    async with aiohttp.ClientSession(connector=connector) as session:
        began = time.perf_counter()
        await asyncio.gather(*(customer(i, session) for i in range(concurrency)))
        elapsed = time.perf_counter() - began
    return {
        "concurrency": concurrency,
        "orders": len(latencies),
        "orders_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(percentile(latencies, 50), 1),
        "p99_ms": round(percentile(latencies, 99), 1),
        "mean_ms": round(statistics.fmean(latencies), 1) if latencies else None,
        "errors": errors,
    }


async def confirmed_on_socket(
    base: str,
    ws_base: str,
    store_id: str,
    products: list[str],
    tokens: list[str],
    concurrency: int,
    duration: float,
) -> dict[str, Any]:
    latencies: list[float] = []
    failures = 0
    stop_at = time.monotonic() + duration

    async def customer(index: int, session: aiohttp.ClientSession) -> None:
        nonlocal failures
        n = 0
        while time.monotonic() < stop_at:
            token = pool_token(tokens, index, n, concurrency)
            async with session.post(
                f"{base}/api/orders",
                json=order_body(store_id, products, n),
                headers={"Authorization": f"Bearer {token}"},
            ) as response:
                body = await response.json()
                t_201 = time.perf_counter()
            n += 1
            url = f"{ws_base}/ws/orders/{body['id']}/?since=1&token={token}"
            async with session.ws_connect(url) as ws:
                try:
                    while True:
                        msg = json.loads((await ws.receive(timeout=5)).data)
                        status = (
                            msg.get("order", {}).get("status")
                            if msg["type"] == "order.snapshot"
                            else msg.get("status")
                        )
                        if msg["type"] == "order.status_changed" and status == "confirmed":
                            latencies.append((time.perf_counter() - t_201) * 1000)
                            break
                except (TimeoutError, TypeError):
                    failures += 1

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(customer(i, session) for i in range(concurrency)))
    return {
        "concurrency": concurrency,
        "orders": len(latencies),
        "p50_ms": round(percentile(latencies, 50), 1),
        "p99_ms": round(percentile(latencies, 99), 1),
        "max_ms": round(max(latencies), 1) if latencies else None,
        "failures": failures,
    }


async def main_async(
    args: argparse.Namespace, fixtures: tuple[str, list[str], list[str]]
) -> dict[str, Any]:
    store_id, products, tokens = fixtures
    port = free_port()
    stack = Stack(port, args.stack, args.workers, args.worker_processes)
    try:
        await stack.wait_ready()
        base, ws_base = f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}"
        await intake(base, store_id, products, tokens, 4, 2)  # warm-up: connections, caches
        results: dict[str, Any] = {"intake": [], "confirmed": []}
        for c in args.concurrency:
            row = await intake(base, store_id, products, tokens, c, args.duration)
            print(
                f"intake  c={c:>2}: {row['orders_per_s']:>7} orders/s  p50 {row['p50_ms']} ms  "
                f"p99 {row['p99_ms']} ms  errors {row['errors']}",
                flush=True,
            )
            results["intake"].append(row)
        drain_s = await asyncio.to_thread(wait_drained, store_id)
        print(f"worker backlog drained {drain_s:.1f} s after the last intake run", flush=True)
        results["drain_s"] = round(drain_s, 1)
        for c in args.socket_concurrency:
            row = await confirmed_on_socket(
                base, ws_base, store_id, products, tokens, c, args.duration
            )
            print(
                f"confirmed on socket c={c:>2}: p50 {row['p50_ms']} ms  p99 {row['p99_ms']} ms  "
                f"({row['orders']} orders, {row['failures']} failures)",
                flush=True,
            )
            results["confirmed"].append(row)
        return results
    finally:
        stack.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="Seconds per measurement.")
    parser.add_argument(
        "--stack", choices=["wsgi", "asgi"], default=os.environ.get("PUBLIC_HTTP_STACK", "wsgi")
    )
    parser.add_argument("--workers", type=int, default=int(os.environ.get("PUBLIC_WORKERS", "2")))
    parser.add_argument(
        "--worker-processes", type=int, default=1, help="Event worker processes (run_worker)."
    )
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--socket-concurrency", type=int, nargs="+", default=[1, 8])
    args = parser.parse_args()
    setup_django()
    results = asyncio.run(main_async(args, make_fixtures(max(args.concurrency), ACCOUNT_POOL)))
    write_results(
        f"intake-{args.stack}",
        {
            "stack": args.stack,
            "worker_processes": args.worker_processes,
            "workers": args.workers,
            "duration_s": args.duration,
            "database": "embedded" if "%2F" in os.environ["DATABASE_URL"] else "server",
            **results,
        },
    )


if __name__ == "__main__":
    main()
