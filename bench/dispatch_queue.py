"""What waiting orders cost: the dispatch queue with 0 and 10,000 orders waiting for a courier.

Usage: ``.venv/bin/python bench/dispatch_queue.py [--waiting 10000] [--passes 200]``
against the server of DATABASE_URL (the embedded one when unset), in a database of its own
(``lokaly_bench_dispatch``, created and migrated, dropped at the end unless ``--keep``).

With no courier free (a rush, or nobody online), confirmed orders wait in the dispatch
queue (``core_dispatchtask``) and the worker looks at that queue on every turn (about
twice a second) plus once per new confirmation. For 0 and ``--waiting`` queued orders it
measures, in this process, as the worker calls them:

1. the due-order scan (``waiting_orders(due_only=True)``): its plan and execution time
   (EXPLAIN ANALYZE);
2. one worker turn's dispatch pass (``dispatch_waiting(due_only=True)``) with no courier
   free: wall and CPU ms and SQL statements per pass, over ``--passes`` passes;
3. a new confirmation's dispatch attempt (``dispatch_one``) with no courier free;
4. one pass with one courier free: the longest-waiting order is assigned.

``--seed-only --keep`` leaves the queue in place (in DATABASE_URL's own database with
``--in-place``) so that bench/worker.py or bench/e2e.py can run on top of it. Results:
printed, and JSON in bench/results/.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.run import percentile, write_results  # noqa: E402

BENCH_DATABASE = "lokaly_bench_dispatch"

SEED_SQL = """
INSERT INTO core_order (id, number, customer_id, store_id, status, status_version,
    subtotal_cents, delivery_fee_cents, total_cents, currency, delivery_address,
    note, cancel_reason, stock_state, created_at, updated_at)
SELECT gen_random_uuid(), 'Q' || %(run)s || '-' || lpad(n::text, 7, '0'), %(customer)s,
       %(store)s, 'confirmed', 2, 258, 199, 457, 'EUR',
       '{"line1": "Bench 1", "city": "Amsterdam", "postal_code": "1000 AA",
         "lat": 52.37, "lng": 4.89, "line2": ""}'::jsonb,
       '', NULL, 'reserved', now() - n * interval '1 second', now() - n * interval '1 second'
FROM generate_series(1, %(orders)s) AS n;
INSERT INTO core_orderline (order_id, product_id, name, quantity, unit_price_cents,
                            line_total_cents)
SELECT o.id, %(product)s, 'Bench milk', 2, 129, 258 FROM core_order o
WHERE o.store_id = %(store)s AND NOT EXISTS (SELECT 1 FROM core_orderline l
                                             WHERE l.order_id = o.id);
INSERT INTO core_dispatchtask (order_id, attempts, next_attempt_at, created_at)
SELECT id, 3, now() - interval '1 second', created_at FROM core_order
WHERE store_id = %(store)s AND status = 'confirmed';
ANALYZE core_order;
ANALYZE core_dispatchtask;
"""


def execute_each(cursor: Any, script: str, params: dict[str, Any]) -> None:
    """Run ``script``'s statements one by one (server-side binding takes one per call)."""
    for statement in filter(str.strip, script.split(";")):
        cursor.execute(statement, params)


def bench_database_url(base: str, name: str) -> str:
    parts = urlsplit(base)
    return urlunsplit(parts._replace(path="/" + name))


def create_database(base_url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(bench_database_url(base_url, "postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(base_url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(bench_database_url(base_url, "postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def setup_django(database_url: str) -> None:
    os.environ["DEBUG"] = "0"
    os.environ["DATABASE_URL"] = database_url
    for name in ("DJANGO_SECRET_KEY", "PUBLIC_JWT_SECRET", "ADMIN_JWT_SECRET"):
        os.environ.setdefault(name, secrets.token_urlsafe(48))
    os.environ["DJANGO_SETTINGS_MODULE"] = "lokaly_admin.settings.base"
    import logging

    import django

    django.setup()
    logging.getLogger("lokaly.worker.dispatch").setLevel(logging.WARNING)
    from django.core.management import call_command

    call_command("migrate_locked", verbosity=0)


class Counter:
    """Counts the SQL statements run through Django's connection while active."""

    def __init__(self) -> None:
        self.statements = 0

    def __call__(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        self.statements += 1
        return execute(sql, params, many, context)


def fixtures() -> dict[str, Any]:
    from lokaly_core.accounts.models import Role, User
    from lokaly_core.catalog.models import Product, Store

    run = uuid.uuid4().hex[:8].upper()
    store = Store.objects.create(name=f"Bench queue {run}", address="Bench", lat=52.37, lng=4.89)
    product = Product.objects.create(sku=f"BENCH-Q-{run}", name="Bench milk", price_cents=129)
    customer = User.objects.create_user(
        email=f"bench-queue-{run.lower()}@lokaly.test", password=None, role=Role.CUSTOMER
    )
    courier = User.objects.create_user(
        email=f"bench-queue-courier-{run.lower()}@lokaly.test", password=None, role=Role.COURIER
    )
    return {
        "run": run,
        "store": store,
        "product": product,
        "customer": customer,
        "courier": courier,
    }


def seed(fx: dict[str, Any], orders: int) -> float:
    from django.db import connection

    started = time.monotonic()
    with connection.cursor() as cursor:
        execute_each(
            cursor,
            SEED_SQL,
            {
                "run": fx["run"],
                "store": fx["store"].id,
                "product": fx["product"].id,
                "customer": fx["customer"].id,
                "orders": orders,
            },
        )
    return time.monotonic() - started


def set_courier_online(courier: Any, online: bool) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        # Free again: the bench's assignments are deleted (one active delivery per courier).
        cursor.execute(
            "UPDATE core_courierstate SET current_delivery_id = NULL WHERE courier_id = %s",
            [courier.id],
        )
        cursor.execute("DELETE FROM core_delivery WHERE courier_id = %s", [courier.id])
        cursor.execute(
            "INSERT INTO core_courierstate (courier_id, is_online, lat, lng, location_at,"
            " available_since, current_delivery_id, updated_at)"
            " VALUES (%s, %s, 52.37, 4.89, now(), now(), NULL, now())"
            " ON CONFLICT (courier_id) DO UPDATE SET is_online = EXCLUDED.is_online,"
            " current_delivery_id = NULL",
            [courier.id, online],
        )


def scan_plan() -> tuple[float, list[str]]:
    """EXPLAIN ANALYZE of the due-order scan the worker runs; (execution ms, plan lines)."""
    from django.db import connection

    from lokaly_core.delivery.repositories import waiting_orders_query
    from lokaly_worker.dispatch import QUEUE_PASS_LIMIT

    sql, params = waiting_orders_query(limit=QUEUE_PASS_LIMIT, due_only=True)
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", params)
        lines = [row[0] for row in cursor.fetchall()]
    executed = next(float(line.split()[2]) for line in lines if line.startswith("Execution Time"))
    return executed, lines


def timed_passes(passes: int, run: Any) -> dict[str, float]:
    from django.db import connection

    counter = Counter()
    walls: list[float] = []
    cpu_started = time.process_time()
    with connection.execute_wrapper(counter):
        for _ in range(passes):
            started = time.perf_counter()
            run()
            walls.append((time.perf_counter() - started) * 1000)
    cpu_ms = (time.process_time() - cpu_started) * 1000 / passes
    return {
        "passes": passes,
        "wall_ms_p50": round(percentile(walls, 50), 3),
        "wall_ms_p99": round(percentile(walls, 99), 3),
        "cpu_ms_mean": round(cpu_ms, 3),
        "statements_per_pass": round(counter.statements / passes, 2),
    }


def measure(fx: dict[str, Any], waiting: int, passes: int) -> dict[str, Any]:
    from lokaly_core.delivery.models import DispatchTask
    from lokaly_worker.dispatch import dispatch_one, dispatch_waiting

    set_courier_online(fx["courier"], False)
    scan_ms, plan = scan_plan()
    idle_pass = timed_passes(
        passes, lambda: dispatch_waiting(due_only=True, event_id=None, via="bench")
    )
    # A new confirmation with nobody free: the attempt, then it joins the queue.
    new_orders = _new_confirmed_orders(fx, passes)
    pending = iter(new_orders)
    confirmation = timed_passes(
        passes,
        lambda: dispatch_one(next(pending), joined=False, event_id=None, via="bench"),
    )
    DispatchTask.objects.filter(order_id__in=new_orders).delete()
    # One courier free: each pass assigns the longest-waiting order, then frees the courier.
    assigned = 0

    def one_assignment() -> None:
        nonlocal assigned
        assigned += dispatch_waiting(due_only=True, event_id=None, via="bench")
        set_courier_online(fx["courier"], True)

    set_courier_online(fx["courier"], True)
    with_courier = timed_passes(min(passes, max(waiting, 1)), one_assignment)
    set_courier_online(fx["courier"], False)
    return {
        "waiting": waiting,
        "scan_execution_ms": scan_ms,
        "scan_plan": plan,
        "pass_no_courier_free": idle_pass,
        "confirmation_no_courier_free": confirmation,
        "pass_one_courier_free": {**with_courier, "assigned": assigned},
    }


def _new_confirmed_orders(fx: dict[str, Any], count: int) -> list[uuid.UUID]:
    from django.db import connection

    with connection.cursor() as cursor:
        execute_each(
            cursor,
            ";".join(SEED_SQL.split(";")[:2]).replace("'Q' ||", "'N' ||"),
            {
                "run": uuid.uuid4().hex[:8].upper(),
                "store": fx["store"].id,
                "product": fx["product"].id,
                "customer": fx["customer"].id,
                "orders": count,
            },
        )
        cursor.execute(
            "SELECT id FROM core_order WHERE store_id = %s AND status = 'confirmed'"
            " AND number LIKE 'N%%' AND id NOT IN (SELECT order_id FROM core_dispatchtask)"
            " ORDER BY created_at DESC",
            [fx["store"].id],
        )
        return [row[0] for row in cursor.fetchall()]


def clear_queue(fx: dict[str, Any]) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM core_dispatchtask WHERE order_id IN"
            " (SELECT id FROM core_order WHERE store_id = %s)",
            [fx["store"].id],
        )
        cursor.execute("DELETE FROM core_delivery WHERE courier_id = %s", [fx["courier"].id])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--waiting", type=int, default=10_000, help="Orders in the queue.")
    parser.add_argument("--passes", type=int, default=200, help="Passes timed per figure.")
    parser.add_argument("--keep", action="store_true", help="Keep the bench database.")
    parser.add_argument(
        "--seed-only", action="store_true", help="Only seed --waiting orders (with --keep)."
    )
    parser.add_argument(
        "--in-place",
        action="store_true",
        help="Use DATABASE_URL's own database instead of one of its own (for --seed-only).",
    )
    args = parser.parse_args()

    base = os.environ.get("DATABASE_URL")
    if not base:
        from lokaly_core.conf import embedded

        base = embedded.database_url()
    name = urlsplit(base).path.lstrip("/") if args.in_place else BENCH_DATABASE
    if not args.in_place:
        create_database(base, name)
    try:
        setup_django(bench_database_url(base, name))
        fx = fixtures()
        if args.seed_only:
            print(
                f"seeded {args.waiting} waiting orders in {seed(fx, args.waiting):.1f} s"
                f" into {name}"
            )
            return 0
        results: dict[str, Any] = {"passes": args.passes, "runs": []}
        for waiting in (0, args.waiting):
            clear_queue(fx)
            if waiting:
                print(f"seeding {waiting} waiting orders ... {seed(fx, waiting):.1f} s")
            result = measure(fx, waiting, args.passes)
            results["runs"].append(result)
            print(f"\n== {waiting} orders waiting")
            print(f"due scan: {result['scan_execution_ms']:.3f} ms; plan:")
            for line in result["scan_plan"][:6]:
                print(f"    {line}")
            for key in (
                "pass_no_courier_free",
                "confirmation_no_courier_free",
                "pass_one_courier_free",
            ):
                print(f"{key}: {result[key]}")
        path = write_results("dispatch_queue", results)
        print(f"\nresults: {path}")
    finally:
        from django.db import connections

        from lokaly_core.outbox import relay

        relay.stop_publisher()  # its last marks, before the database goes
        connections.close_all()
        if not args.in_place and not args.keep:
            drop_database(base, name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
