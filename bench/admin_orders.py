"""Admin order list on 100,000 orders: first-page latency of the filtered list, and its plans.

Usage: ``.venv/bin/python bench/admin_orders.py [--orders 100000] [--requests 200]``
against DATABASE_URL / REDIS_URL (a database of its own is best: it migrates it).

It migrates, writes a bench store, 2,000 customers and ``--orders`` orders (one line
each, statuses mixed as a live shop has them: mostly delivered) in a few bulk
``INSERT ... SELECT generate_series`` statements, starts the real admin server (WSGI,
``--workers`` processes, DEBUG off), and times ``GET /api/admin/orders`` first pages, one
request at a time over a kept-alive connection, for each filter below. It prints the
EXPLAIN ANALYZE of each list query (the indexes must show) and writes the figures as JSON
to bench/results/. The bench rows are deleted at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import statistics
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.run import free_port, percentile, write_results  # noqa: E402

CUSTOMERS = 2_000
TARGET_MS = 50.0

# Statuses as a running shop has them: most orders are done, a few are open.
SEED_SQL = [
    """
    CREATE TEMP TABLE bench_customers AS
    SELECT row_number() OVER (ORDER BY id) - 1 AS k, id FROM core_user
    WHERE email LIKE lower('bench-' || %(run)s || '-%%')
    """,
    """
    INSERT INTO core_order (id, number, customer_id, store_id, status, status_version,
        subtotal_cents, delivery_fee_cents, total_cents, currency, delivery_address,
        note, cancel_reason, stock_state, created_at, updated_at)
    SELECT gen_random_uuid(), 'B' || %(run)s || '-' || lpad(n::text, 7, '0'), c.id,
           %(store)s,
           CASE WHEN n %% 100 < 80 THEN 'delivered' WHEN n %% 100 < 88 THEN 'cancelled'
                WHEN n %% 100 < 92 THEN 'confirmed' WHEN n %% 100 < 94 THEN 'pending'
                WHEN n %% 100 < 96 THEN 'picking' WHEN n %% 100 < 98 THEN 'ready'
                ELSE 'out_for_delivery' END,
           2, 258, 199, 457, 'EUR',
           '{"line1": "Bench 1", "city": "Amsterdam", "postal_code": "1000 AA",
             "lat": 52.37, "lng": 4.89, "line2": ""}'::jsonb,
           '', NULL, 'none',
           now() - (n * interval '77 seconds'), now() - (n * interval '77 seconds')
    FROM generate_series(1, %(orders)s) AS n
    JOIN bench_customers c ON c.k = n %% %(customers)s
    """,
    """
    INSERT INTO core_orderline (order_id, product_id, name, quantity, unit_price_cents,
                                line_total_cents)
    SELECT id, %(product)s, 'Bench milk', 2, 129, 258 FROM core_order
    WHERE store_id = %(store)s
    """,
    "DROP TABLE bench_customers",
    "ANALYZE core_user",
    "ANALYZE core_order",
    "ANALYZE core_orderline",
]


def setup_django() -> None:
    # As in production: DEBUG off, real (fresh) secrets shared with the server it starts.
    os.environ["DEBUG"] = "0"
    for name in ("DJANGO_SECRET_KEY", "PUBLIC_JWT_SECRET", "ADMIN_JWT_SECRET"):
        os.environ.setdefault(name, secrets.token_urlsafe(48))
    os.environ["DJANGO_SETTINGS_MODULE"] = "lokaly_admin.settings.base"
    import logging

    import django

    django.setup()
    logging.getLogger("httpx").setLevel(logging.WARNING)


def seed(orders: int) -> dict[str, Any]:
    """The bench store, customers and orders, in bulk SQL; returns what the queries need."""
    from django.db import connection

    from lokaly_core.catalog.models import Product, Store

    run = uuid.uuid4().hex[:8].upper()  # order numbers are upper case
    store = Store.objects.create(name=f"Bench admin {run}", address="Bench", lat=52.37, lng=4.89)
    product = Product.objects.create(sku=f"BENCH-A-{run}", name="Bench milk", price_cents=129)
    started = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO core_user (id, password, is_superuser, email, name, role, is_active,
                                   date_joined)
            SELECT gen_random_uuid(), '!', false,
                   lower('bench-' || %(run)s || '-' || n || '@lokaly.test'),
                   'Bench customer ' || n, 'customer', true, now()
            FROM generate_series(1, %(customers)s) AS n
            """,
            {"run": run, "customers": CUSTOMERS},
        )
        params: dict[str, Any] = {
            "run": run,
            "store": store.id,
            "product": product.id,
            "orders": orders,
            "customers": CUSTOMERS,
        }
        for statement in SEED_SQL:
            cursor.execute(statement, params)
        cursor.execute(
            "SELECT min(created_at), max(created_at), "
            "(SELECT email FROM core_user WHERE email = lower('bench-' || %s || '-7@lokaly.test')) "
            "FROM core_order WHERE store_id = %s",
            [run, store.id],
        )
        oldest, newest, email = cursor.fetchone()
    return {
        "run": run,
        "store_id": str(store.id),
        "product_id": str(product.id),
        "email": email,
        "number_prefix": f"B{run}-00001",  # 10 orders
        "created_after": (newest - timedelta(days=1)).isoformat(),
        "seed_s": round(time.monotonic() - started, 1),
    }


def cleanup(data: dict[str, Any]) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM core_orderline WHERE order_id IN "
            "(SELECT id FROM core_order WHERE store_id = %s)",
            [data["store_id"]],
        )
        cursor.execute("DELETE FROM core_order WHERE store_id = %s", [data["store_id"]])
        cursor.execute(
            "DELETE FROM core_user WHERE email LIKE %s", [f"bench-{data['run'].lower()}-%"]
        )
        cursor.execute("DELETE FROM core_stock WHERE store_id = %s", [data["store_id"]])
        cursor.execute("DELETE FROM core_store WHERE id = %s", [data["store_id"]])
        cursor.execute("DELETE FROM core_product WHERE id = %s", [data["product_id"]])


def scenarios(data: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {
        "status=confirmed&store_id": {"status": "confirmed", "store_id": data["store_id"]},
        "search=<email>": {"search": data["email"]},
        "search=<number prefix>": {"search": data["number_prefix"]},
        "created_after=<1 day ago>": {"created_after": data["created_after"]},
        "status=out_for_delivery&store_id&created_after": {
            "status": "out_for_delivery",
            "store_id": data["store_id"],
            "created_after": data["created_after"],
        },
        "no filter": {},
    }


def explain(params: dict[str, str]) -> str:
    """EXPLAIN ANALYZE of the list's page query, as the view builds it."""
    from django.utils.dateparse import parse_datetime

    from lokaly_core.orders.selectors import admin_orders

    query = dict(params)
    if "created_after" in query:
        query["created_after"] = parse_datetime(query["created_after"])  # type: ignore[assignment]
    qs = admin_orders(**query).order_by("-created_at", "-id")[:21]  # type: ignore[arg-type]
    return qs.explain(analyze=True)


class AdminServer:
    def __init__(self, port: int, workers: int) -> None:
        env = {**os.environ, "LOG_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1"}
        env.pop("DJANGO_SETTINGS_MODULE", None)
        logs = ROOT / "bench" / "results"
        logs.mkdir(parents=True, exist_ok=True)
        self.url = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "manage_admin.py",
                "serve",
                "--no-migrate",
                "--port",
                str(port),
                "--workers",
                str(workers),
            ],
            cwd=ROOT,
            env=env,
            stdout=(logs / "admin.log").open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/health/ready", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        self.stop()
        raise SystemExit("the admin server did not become ready; see bench/results/admin.log")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)


def measure(url: str, token: str, params: dict[str, str], requests: int) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"}
    timings: list[float] = []
    with httpx.Client(base_url=url, headers=headers, timeout=10) as client:
        for i in range(requests + 20):  # the first 20 warm the connection and the caches
            started = time.perf_counter()
            response = client.get("/api/admin/orders", params=params)
            elapsed = (time.perf_counter() - started) * 1000
            if response.status_code != 200:
                raise SystemExit(f"{params}: {response.status_code} {response.text[:300]}")
            if i >= 20:
                timings.append(elapsed)
        rows = len(response.json()["results"])
    return {
        "rows": rows,
        "p50_ms": round(percentile(timings, 50), 1),
        "p99_ms": round(percentile(timings, 99), 1),
        "mean_ms": round(statistics.fmean(timings), 1),
        "max_ms": round(max(timings), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="Keep the bench rows.")
    args = parser.parse_args()

    subprocess.run(
        [sys.executable, "manage_admin.py", "migrate_locked", "--verbosity", "0"],
        cwd=ROOT,
        check=True,
        env={**os.environ, "DEBUG": "1"},
    )
    setup_django()
    from lokaly_core.accounts.models import Role, User
    from lokaly_core.accounts.tokens import ADMIN, issue_pair

    data = seed(args.orders)
    print(f"seeded {args.orders} orders in {data['seed_s']} s")
    staff = User.objects.create_user(
        f"bench-{data['run'].lower()}-staff@lokaly.test", name="Bench staff", role=Role.ADMIN
    )
    token = issue_pair(ADMIN, staff)["access"]
    plans: dict[str, str] = {}
    results: dict[str, Any] = {}
    server = AdminServer(free_port(), args.workers)
    try:
        for name, params in scenarios(data).items():
            plans[name] = explain(params)
            results[name] = measure(server.url, token, params, args.requests)
            print(f"\n== {name}: {results[name]}\n{plans[name]}")
    finally:
        server.stop()
        if not args.keep:
            staff.delete()
            cleanup(data)
    verdict = all(r["p99_ms"] < TARGET_MS for r in results.values())
    out = write_results(
        "admin-orders",
        {
            "orders": args.orders,
            "requests": args.requests,
            "workers": args.workers,
            "results": results,
            "plans": plans,
            "p99_under_target": verdict,
        },
    )
    print(f"every p99 under {TARGET_MS} ms: {verdict} ({out.name})")


if __name__ == "__main__":
    main()
