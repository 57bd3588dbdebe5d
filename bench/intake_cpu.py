"""CPU per order of the public API process: N ``POST /api/orders`` through the real WSGI app.

Usage: ``.venv/bin/python bench/intake_cpu.py [--orders 500] [--items 2] [--no-key]
[--profile 200]``, against DATABASE_URL / REDIS_URL (the embedded servers when unset).

In one process, with ``DEBUG`` off as in production: a bench store and customer are made,
then each order is a WSGI call on ``lokaly_public.wsgi.application`` (every middleware,
authentication, the rate limiter, the view, the database and Redis; no network, no
server). Reported per order:

- CPU ms of the whole process (``time.process_time``: the request thread plus the outbox
  publisher thread, which puts the events on the stream after commit) and of the request
  thread alone (``time.thread_time``). CPU time, unlike throughput, hardly moves when other
  processes share the cores, so it is the figure to compare;
- SQL round trips of the request thread: statements (``connection.execute_wrapper``),
  Django's connection health checks (``is_usable``, which bypasses the wrappers), and
  transactions (a BEGIN and a COMMIT or ROLLBACK each); and the publisher thread's
  statements;
- Redis commands and round trips (counted in redis-py's connection: a pipeline or a
  script is one round trip);
- then a cProfile run of ``--profile`` more orders: where the request's time goes.

Each order has ``--items`` lines and, unless ``--no-key``, its own ``Idempotency-Key`` (as
the apps send it). Results are printed and written to bench/results/intake_cpu-<time>.json.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import secrets
import subprocess
import sys
import threading
import time
import uuid
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RUN = uuid.uuid4().hex[:8]


def setup_django() -> None:
    os.environ["DEBUG"] = "0"
    for name in ("DJANGO_SECRET_KEY", "PUBLIC_JWT_SECRET", "ADMIN_JWT_SECRET"):
        os.environ.setdefault(name, secrets.token_urlsafe(48))
    os.environ["DJANGO_SETTINGS_MODULE"] = "lokaly_public.settings.base"
    # The limiter runs (and is counted) but never refuses the bench's one address.
    os.environ["PUBLIC_RATE_LIMIT"] = "100000000/m"
    # One customer places every order: a limit it never reaches, still counted per order.
    os.environ["MAX_OPEN_ORDERS_PER_CUSTOMER"] = "100000000"
    os.environ["EVENT_STREAM"] = f"lokaly-bench-intake-{RUN}:events"
    os.environ["CACHE_KEY_PREFIX"] = f"lokaly-bench-intake-{RUN}"
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    # WhiteNoise warns that collectstatic never ran here; nothing static is requested.
    warnings.filterwarnings("ignore", message="No directory at", category=UserWarning)
    django.setup()


def make_fixtures(items: int, store_rules: bool = False) -> tuple[str, list[str], str]:
    """A store with ``items`` products of ample stock, and a customer's access token; with
    ``store_rules``, the store has v1.1 hours (open all week), a time zone and a radius."""
    from lokaly_core.accounts.models import Role, User
    from lokaly_core.accounts.tokens import PUBLIC, issue_pair
    from lokaly_core.catalog.models import Product, Store
    from lokaly_core.inventory.models import Stock

    env = {**os.environ}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    subprocess.run(
        [sys.executable, "manage_admin.py", "migrate_locked", "--verbosity", "0"],
        cwd=ROOT, check=True, env=env,
    )
    store = Store.objects.create(name=f"Bench {RUN}", address="Bench", lat=52.37, lng=4.89)
    if store_rules:
        week = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
        store.opening_hours = {d: [["00:00", "12:00"], ["12:00", "00:00"]] for d in week}
        store.timezone, store.delivery_radius_m = "Europe/Amsterdam", 5_000
        store.save()
    products = []
    for i in range(items):
        product = Product.objects.create(
            sku=f"BENCH-I-{RUN}-{i}", name=f"Bench {i}", price_cents=100 + i
        )
        Stock.objects.create(store=store, product=product, on_hand=10_000_000)
        products.append(str(product.id))
    user = User(email=f"bench-intake-{RUN}@lokaly.test", name="Bench", role=Role.CUSTOMER)
    user.set_unusable_password()
    user.save()
    return str(store.id), products, issue_pair(PUBLIC, user)["access"]


class Counts:
    """SQL and Redis round trips, by thread (``request`` is this thread, ``other`` the rest)."""

    def __init__(self) -> None:
        self.by: Counter[str] = Counter()
        self.request_thread = threading.get_ident()

    def add(self, what: str, n: int = 1) -> None:
        side = "request" if threading.get_ident() == self.request_thread else "other"
        self.by[f"{side}.{what}"] += n

    def snapshot(self) -> Counter[str]:
        return Counter(self.by)


@contextmanager
def counting(counts: Counts) -> Iterator[None]:
    """Count every round trip to PostgreSQL and Redis while inside."""
    import redis.connection
    from django.db import connection, connections
    from django.db.backends.base.base import BaseDatabaseWrapper
    from django.db.backends.utils import CursorWrapper

    def statement(execute: Callable[..., Any], sql: str, params: Any, many: bool, ctx: Any) -> Any:
        counts.add("sql.statements")
        return execute(sql, params, many, ctx)

    patches: list[tuple[Any, str, Any]] = []

    def patch(owner: Any, name: str, make: Callable[[Any], Any]) -> None:
        original = owner.__dict__[name]
        patches.append((owner, name, original))
        setattr(owner, name, make(original))

    def counted(what: str) -> Callable[[Any], Any]:
        def make(original: Any) -> Any:
            def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
                counts.add(what)
                return original(self, *args, **kwargs)

            return wrapper

        return make

    def other_threads_statements(original: Any) -> Any:
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            if threading.get_ident() != counts.request_thread:
                counts.add("sql.statements")
            return original(self, *args, **kwargs)

        return wrapper

    def pipeline_commands(original: Any) -> Any:
        def wrapper(self: Any, commands: Any) -> Any:
            commands = list(commands)
            counts.add("redis.commands", len(commands))
            return original(self, commands)

        return wrapper

    connection_class = type(connections["default"])
    wrapper_class = next(c for c in connection_class.__mro__ if "is_usable" in c.__dict__)
    patch(wrapper_class, "is_usable", counted("sql.health_checks"))
    patch(BaseDatabaseWrapper, "_commit", counted("sql.transactions"))
    patch(BaseDatabaseWrapper, "_rollback", counted("sql.transactions"))
    patch(CursorWrapper, "execute", other_threads_statements)
    patch(CursorWrapper, "executemany", other_threads_statements)
    patch(redis.connection.AbstractConnection, "send_packed_command", counted("redis.round_trips"))
    patch(redis.connection.AbstractConnection, "send_command", counted("redis.commands"))
    patch(redis.connection.AbstractConnection, "pack_commands", pipeline_commands)
    try:
        with connection.execute_wrapper(statement):
            yield
    finally:
        for owner, name, original in reversed(patches):
            setattr(owner, name, original)


class Orders:
    """WSGI calls of ``POST /api/orders`` on the real application."""

    def __init__(self, store_id: str, products: list[str], token: str, *, key: bool) -> None:
        from lokaly_public.wsgi import application

        self.app = application
        self.store_id, self.products, self.token, self.key = store_id, products, token, key
        self.n = 0
        self.statuses: Counter[int] = Counter()

    def body(self) -> bytes:
        return json.dumps({
            "store_id": self.store_id,
            "items": [{"product_id": p, "quantity": 1 + self.n % 3} for p in self.products],
            "delivery_address": {
                "line1": "Keizersgracht 1", "city": "Amsterdam", "postal_code": "1015 CJ",
                "lat": 52.37, "lng": 4.89,
            },
            "note": "Ring twice",
        }).encode()

    def environ(self) -> dict[str, Any]:
        body = self.body()
        environ = {
            "REQUEST_METHOD": "POST", "PATH_INFO": "/api/orders", "QUERY_STRING": "",
            "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "3000", "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1", "HTTP_HOST": "127.0.0.1:3000",
            "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(body)),
            "HTTP_AUTHORIZATION": f"Bearer {self.token}",
            "wsgi.input": io.BytesIO(body), "wsgi.url_scheme": "http", "wsgi.errors": sys.stderr,
            "wsgi.version": (1, 0), "wsgi.multithread": True, "wsgi.multiprocess": True,
            "wsgi.run_once": False,
        }
        if self.key:
            environ["HTTP_IDEMPOTENCY_KEY"] = f"bench-{RUN}-{self.n}"
        return environ

    def post(self) -> bytes:
        self.n += 1
        status: list[str] = []

        def start_response(line: str, headers: Any, exc_info: Any = None) -> Any:
            status.append(line)

        result = self.app(self.environ(), start_response)
        try:
            content = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        code = int(status[0].split()[0])
        self.statuses[code] += 1
        if code != 201:
            raise SystemExit(f"POST /api/orders answered {status[0]}: {content[:500]!r}")
        return content


def wait_published(timeout: float = 60) -> None:
    """Until the publisher thread has put every bench order's event on the stream."""
    from lokaly_core.outbox.models import OutboxEvent

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not OutboxEvent.objects.filter(
            type="order.created", published_at__isnull=True,
            payload__store_id=_STORE_ID[0],
        ).exists():
            return
        time.sleep(0.05)


_STORE_ID: list[str] = []


def measure(orders: Orders, n: int) -> dict[str, Any]:
    counts = Counts()
    with counting(counts):
        cpu0, thread0, wall0 = time.process_time(), time.thread_time(), time.perf_counter()
        for _ in range(n):
            orders.post()
        wall = time.perf_counter() - wall0
        thread = time.thread_time() - thread0
        time.sleep(1)  # the publisher's last batches, counted; then checked without counting
    wait_published()
    cpu = time.process_time() - cpu0
    per = {k: round(v / n, 2) for k, v in sorted(counts.snapshot().items())}
    return {
        "orders": n,
        "cpu_ms_per_order": round(cpu / n * 1000, 3),
        "request_thread_cpu_ms_per_order": round(thread / n * 1000, 3),
        "wall_ms_per_order": round(wall / n * 1000, 3),
        "per_order": per,
    }


def profile(orders: Orders, n: int, top: int) -> str:
    profiler = cProfile.Profile(time.process_time)
    profiler.enable()
    for _ in range(n):
        orders.post()
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)
    return out.getvalue()


def cleanup() -> None:
    from django.conf import settings

    from lokaly_core.redis_client import get_redis

    get_redis().delete(settings.EVENT_STREAM)
    for key in get_redis().scan_iter(match=f"{settings.CACHES['default']['KEY_PREFIX']}:*"):
        get_redis().delete(key)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=500, help="timed orders (default 500)")
    parser.add_argument("--warmup", type=int, default=50, help="untimed first orders")
    parser.add_argument("--items", type=int, default=2, help="lines per order (default 2)")
    parser.add_argument("--no-key", action="store_true", help="send no Idempotency-Key")
    parser.add_argument(
        "--store-rules", action="store_true",
        help="the store has opening hours, a time zone and a delivery radius (v1.1)",
    )
    parser.add_argument(
        "--profile", type=int, default=200, help="orders run under cProfile after (0: none)"
    )
    parser.add_argument("--top", type=int, default=30, help="functions listed per profile table")
    args = parser.parse_args()

    setup_django()
    store_id, products, token = make_fixtures(args.items, args.store_rules)
    _STORE_ID.append(store_id)
    orders = Orders(store_id, products, token, key=not args.no_key)
    try:
        for _ in range(args.warmup):
            orders.post()
        wait_published()
        result = measure(orders, args.orders)
        report = profile(orders, args.profile, args.top) if args.profile else ""
    finally:
        cleanup()
    result.update(items=args.items, idempotency_key=not args.no_key)
    print(json.dumps(result, indent=2))
    if report:
        print(report)
    out = ROOT / "bench" / "results" / f"intake_cpu-{int(time.time())}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({**result, "profile": report}, indent=2))
    print(f"written to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
