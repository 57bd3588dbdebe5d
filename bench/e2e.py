"""End to end as a customer app does it: place the order, open its socket, wait for
``confirmed``; orders/s, latency, the CPU each process group used, and pgbench's ratio.

Usage: ``.venv/bin/python bench/e2e.py [--duration 10] [--customers 1 8 32]``
against DATABASE_URL / REDIS_URL (the embedded servers when unset).

It starts the public server (``PUBLIC_WORKERS`` processes, default 2) and ``--workers``
worker processes (default 1) as bench/run.py does (DEBUG off, fresh secrets, a stream of
its own), then:

1. **pgbench "create order"**, on a scratch database of the same server, with the stack
   idle: the modelled transaction of the machine's baselines in plain SQL (3 conditional
   stock updates, 1 order insert, 3 line inserts, 1 jsonb outbox insert), ``-c 8 -j 2``;
2. for each ``--customers`` count, a closed loop for ``--duration`` s: every customer
   POSTs an order, opens ``/ws/orders/{id}/?since=1`` on the 201, waits for the order to
   be ``confirmed`` (in the snapshot or a change), closes, and orders again. Figures:
   confirmed orders/s, latency from the POST to ``confirmed`` (p50/p99/max), the 201's
   latency, failures, and CPU seconds used during the phase by each process group (the
   public server's processes, the workers, PostgreSQL's processes for the bench database
   plus its background processes, Redis) per confirmed order, and the load generator's
   own (this process: not the servers', but it shares their cores);
3. the ratio of the 32-customer orders/s to pgbench's TPS (issue 10's target: >= 0.10).

The load generator runs on the same cores. Results: printed, and JSON in bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.run import (  # noqa: E402
    ACCOUNT_POOL,
    Stack,
    cpu_by_pid,
    cpu_used,
    free_port,
    make_fixtures,
    order_body,
    percentile,
    pool_token,
    postgres_processes,
    setup_django,
    write_results,
)

PGBENCH_DATABASE = "lokaly_bench_pgbench"
PGBENCH_SCHEMA = """
DROP TABLE IF EXISTS stock, orders, order_lines, outbox;
CREATE TABLE stock (id int PRIMARY KEY, quantity int NOT NULL);
INSERT INTO stock SELECT n, 1000000000 FROM generate_series(1, 1000) AS n;
CREATE TABLE orders (id bigserial PRIMARY KEY, customer int NOT NULL, total int NOT NULL,
                     created_at timestamptz NOT NULL);
CREATE TABLE order_lines (id bigserial PRIMARY KEY, order_id bigint NOT NULL
                          REFERENCES orders, product int NOT NULL, quantity int NOT NULL);
CREATE TABLE outbox (id bigserial PRIMARY KEY, payload jsonb NOT NULL,
                     created_at timestamptz NOT NULL DEFAULT now());
"""
PGBENCH_SCRIPT = """
\\set p1 random(1, 1000)
\\set p2 random(1, 1000)
\\set p3 random(1, 1000)
BEGIN;
UPDATE stock SET quantity = quantity - 1 WHERE id = :p1 AND quantity >= 1;
UPDATE stock SET quantity = quantity - 1 WHERE id = :p2 AND quantity >= 1;
UPDATE stock SET quantity = quantity - 1 WHERE id = :p3 AND quantity >= 1;
INSERT INTO orders (customer, total, created_at) VALUES (:p1, 457, now()) RETURNING id \\gset
INSERT INTO order_lines (order_id, product, quantity) VALUES (:id, :p1, 1);
INSERT INTO order_lines (order_id, product, quantity) VALUES (:id, :p2, 1);
INSERT INTO order_lines (order_id, product, quantity) VALUES (:id, :p3, 1);
INSERT INTO outbox (payload)
    VALUES (('{"type": "order.created", "order_id": ' || :id || '}')::jsonb);
END;
"""


def _with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


def pgbench_tps(database_url: str, seconds: float) -> dict[str, Any]:
    """pgbench's "create order" TPS at -c 8 -j 2 on a scratch database of the same server."""
    import psycopg

    admin = _with_database(database_url, "postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{PGBENCH_DATABASE}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{PGBENCH_DATABASE}"')
    url = _with_database(database_url, PGBENCH_DATABASE)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(PGBENCH_SCHEMA)
        with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as script:
            script.write(PGBENCH_SCRIPT)
        out = subprocess.run(
            [
                _pgbench(),
                "-n",
                "-c",
                "8",
                "-j",
                "2",
                "-T",
                str(int(seconds)),
                "-f",
                script.name,
                url,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        os.unlink(script.name)
        if out.returncode:
            raise SystemExit(f"pgbench failed: {out.stderr[-2000:]}")
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{PGBENCH_DATABASE}" WITH (FORCE)')
    tps = float(re.search(r"tps = ([\d.]+)", out.stdout).group(1))  # type: ignore[union-attr]
    latency = re.search(r"latency average = ([\d.]+) ms", out.stdout)
    return {"tps": round(tps, 1), "latency_avg_ms": float(latency.group(1)) if latency else None}


def _pgbench() -> str:
    try:
        import pgserver._commands

        bundled = Path(pgserver._commands.POSTGRES_BIN_PATH) / "pgbench"
        if bundled.exists():
            return str(bundled)
    except ImportError:
        pass
    found = shutil.which("pgbench")
    if not found:
        raise SystemExit("pgbench not found: install PostgreSQL's client tools")
    return found


class ProcessGroups:
    """CPU seconds (user + system) of each group of processes, sampled on demand."""

    def __init__(self, stack: Stack, database: str, redis_port: int | None) -> None:
        self.stack = stack
        self.database = database
        self.redis_port = redis_port

    def _tree(self, pid: int) -> list[psutil.Process]:
        try:
            parent = psutil.Process(pid)
            return [parent, *parent.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def groups(self) -> dict[str, list[psutil.Process]]:
        public = self._tree(self.stack.procs[0].pid)
        workers = [p for proc in self.stack.procs[1:] for p in self._tree(proc.pid)]
        postgres, redis = postgres_processes(self.database), []
        for proc in psutil.process_iter(["name", "cmdline"]):
            cmdline = " ".join(proc.info["cmdline"] or [])
            name = proc.info["name"] or ""
            if ("redis-server" in name or "valkey-server" in name) and (
                self.redis_port is None or f":{self.redis_port}" in cmdline
            ):
                redis.append(proc)
        return {"public": public, "worker": workers, "postgres": postgres, "redis": redis}

    def sample(self) -> dict[str, dict[int, float]]:
        return {group: cpu_by_pid(procs) for group, procs in self.groups().items()}

    @staticmethod
    def used(before: dict[str, dict[int, float]], after: dict[str, dict[int, float]]) -> dict:
        """CPU seconds used between two samples; a process born in between counts whole."""
        return {group: round(cpu_used(before.get(group, {}), after[group]), 3) for group in after}


def _own_cpu() -> float:
    times = psutil.Process().cpu_times()
    return float(times.user + times.system)


async def closed_loop(
    base: str,
    ws_base: str,
    fixtures: tuple[str, list[str], list[str]],
    customers: int,
    duration: float,
) -> dict[str, Any]:
    store_id, products, tokens = fixtures
    to_confirmed: list[float] = []
    to_201: list[float] = []
    failures: dict[str, int] = {}
    stop_at = time.monotonic() + duration

    def fail(why: str) -> None:
        failures[why] = failures.get(why, 0) + 1

    async def customer(index: int, session: aiohttp.ClientSession) -> None:
        n = 0
        while time.monotonic() < stop_at:
            token = pool_token(tokens, index, n, customers)
            started = time.perf_counter()
            async with session.post(
                f"{base}/api/orders",
                json=order_body(store_id, products, n + index * 7),
                headers={"Authorization": f"Bearer {token}"},
            ) as response:
                body = await response.json()
                if response.status != 201:
                    fail(f"http {response.status}")
                    continue
            to_201.append((time.perf_counter() - started) * 1000)
            n += 1
            url = f"{ws_base}/ws/orders/{body['id']}/?since=1&token={token}"
            try:
                async with session.ws_connect(url) as ws:
                    while True:
                        frame = await ws.receive(timeout=10)
                        if frame.type != aiohttp.WSMsgType.TEXT:  # closed: say how
                            fail(f"socket {frame.type.name.lower()} {ws.close_code}")
                            break
                        message = json.loads(frame.data)
                        status = (
                            message["order"]["status"]
                            if message["type"] == "order.snapshot"
                            else message.get("status")
                        )
                        if status == "confirmed":
                            to_confirmed.append((time.perf_counter() - started) * 1000)
                            break
                        if status == "cancelled":
                            fail("cancelled")
                            break
            except TimeoutError:
                fail("no confirmed in 10 s")
                print(f"e2e: order {body['id']} not confirmed within 10 s", file=sys.stderr)
            except (TypeError, aiohttp.ClientError) as exc:
                fail(type(exc).__name__)

    connector = aiohttp.TCPConnector(limit=customers * 2)
    async with aiohttp.ClientSession(connector=connector) as session:
        began = time.perf_counter()
        await asyncio.gather(*(customer(i, session) for i in range(customers)))
        elapsed = time.perf_counter() - began
    return {
        "customers": customers,
        "confirmed": len(to_confirmed),
        "orders_per_s": round(len(to_confirmed) / elapsed, 1),
        "confirmed_p50_ms": round(percentile(to_confirmed, 50), 1),
        "confirmed_p99_ms": round(percentile(to_confirmed, 99), 1),
        "confirmed_max_ms": round(max(to_confirmed), 1) if to_confirmed else None,
        "created_p50_ms": round(percentile(to_201, 50), 1),
        "created_p99_ms": round(percentile(to_201, 99), 1),
        "failures": failures,
        "seconds": round(elapsed, 2),
    }


async def run(
    args: argparse.Namespace, fixtures: tuple[str, list[str], list[str]], pgbench: dict[str, Any]
) -> dict[str, Any]:
    from django.conf import settings

    database = settings.DATABASES["default"]["NAME"]
    redis_port = urlsplit(settings.REDIS_URL).port
    port = free_port()
    stack = Stack(port, "wsgi", args.public_workers, args.workers)
    phases = []
    try:
        await stack.wait_ready()
        groups = ProcessGroups(stack, database, redis_port)
        base, ws_base = f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}"
        await closed_loop(base, ws_base, fixtures, 2, 2)  # warm-up: imports, connections
        for customers in args.customers:
            before, client_before = groups.sample(), _own_cpu()
            phase = await closed_loop(base, ws_base, fixtures, customers, args.duration)
            after, client_after = groups.sample(), _own_cpu()
            cpu = ProcessGroups.used(before, after)
            # uvicorn's supervisor kills and replaces a server process that misses its
            # 5 s health check, logging it at info only (the servers log warnings): a
            # replaced process closes its sockets (a stall of the phase), so say so.
            replaced = len(set(after["public"]) - set(before["public"]))
            if replaced:
                phase["public_processes_replaced"] = replaced
            confirmed = max(phase["confirmed"], 1)
            phase["cpu_s"] = cpu
            phase["cpu_ms_per_order"] = {g: round(s * 1000 / confirmed, 2) for g, s in cpu.items()}
            phase["cpu_ms_per_order"]["all"] = round(sum(cpu.values()) * 1000 / confirmed, 2)
            # The load generator's own CPU (this process): not the servers', but it shares
            # their two cores, so it bounds the rate a run can show.
            phase["client_cpu_ms_per_order"] = round(
                (client_after - client_before) * 1000 / confirmed, 2
            )
            phases.append(phase)
            print(json.dumps(phase))
    finally:
        stack.stop()
    at_32 = next((p for p in phases if p["customers"] == 32), phases[-1])
    return {
        "duration_s": args.duration,
        "public_workers": args.public_workers,
        "workers": args.workers,
        "pgbench": pgbench,
        "phases": phases,
        "ratio_to_pgbench": round(at_32["orders_per_s"] / pgbench["tps"], 4),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="Seconds per phase.")
    parser.add_argument("--customers", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--public-workers", type=int, default=2)
    parser.add_argument("--workers", type=int, default=1, help="Worker processes.")
    parser.add_argument("--pgbench-seconds", type=float, default=8.0)
    args = parser.parse_args()
    setup_django()
    fixtures = make_fixtures(max(args.customers), ACCOUNT_POOL)
    pgbench = pgbench_tps(os.environ["DATABASE_URL"], args.pgbench_seconds)
    print(f"pgbench 'create order' -c 8 -j 2: {pgbench['tps']} TPS")
    results = asyncio.run(run(args, fixtures, pgbench))
    print(f"ratio to pgbench (32 customers): {results['ratio_to_pgbench']}")
    print(f"results: {write_results('e2e', results)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
