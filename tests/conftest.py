"""Shared fixtures. Tests run against the real PostgreSQL and Redis named by DATABASE_URL
and REDIS_URL (``make test`` sets them, or starts the embedded ones)."""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, cast

import psycopg
import pytest
import redis
from django.conf import settings
from django.db import OperationalError, connection
from rest_framework.test import APIClient

from lokaly_core.accounts import session_store
from lokaly_core.accounts.models import Role, User
from lokaly_core.accounts.tokens import PUBLIC, issue_pair
from lokaly_core.conf import servers
from lokaly_core.events import Envelope
from lokaly_core.outbox import relay
from lokaly_core.redis_client import StreamEntry, get_redis
from tests import live
from tests.factories import ProductFactory, StockFactory, StoreFactory, UserFactory

# tests/admin runs with the admin server's settings (a second pytest run, see Makefile);
# every other folder with the public server's.
ADMIN_SETTINGS = "lokaly_admin.settings.test"
# This process's database sessions say whose they are in pg_stat_activity (the processes a
# test starts say lokaly-live-<name>, tests/live.py).
os.environ.setdefault("PGAPPNAME", "lokaly-pytest")
TESTS = Path(__file__).resolve().parent
ADMIN_RUN = os.environ.get("DJANGO_SETTINGS_MODULE") == ADMIN_SETTINGS
if ADMIN_RUN:
    collect_ignore_glob = ["domain/*", "public/*", "worker/*", "e2e/*", "realtime/*", "test_*.py"]
else:
    collect_ignore_glob = ["admin/*"]


def pytest_configure(config: pytest.Config) -> None:
    """Refuse, with the command to use, paths the other settings' run would have to run
    (they would otherwise be ignored in silence: "no tests ran")."""
    named = [Path(arg.split("::")[0]).resolve() for arg in config.args]
    admin = [p for p in named if p.is_relative_to(TESTS / "admin")]
    others = [p for p in named if p.is_relative_to(TESTS) and p != TESTS and p not in admin]
    if admin and not ADMIN_RUN:
        raise pytest.UsageError(
            "tests/admin runs with the admin server's settings: "
            f".venv/bin/pytest --ds={ADMIN_SETTINGS} "
            + " ".join(str(p.relative_to(TESTS.parent)) for p in admin)
            + "  (make test runs both)"
        )
    if others and ADMIN_RUN:
        raise pytest.UsageError(
            f"--ds={ADMIN_SETTINGS} runs tests/admin only; run these without --ds: "
            ".venv/bin/pytest " + " ".join(str(p.relative_to(TESTS.parent)) for p in others)
        )


def pytest_collection_finish(session: pytest.Session) -> None:
    """Before the first test: stop the run at once on a PostgreSQL or Redis older than the
    oldest supported (lokaly_core/conf/servers.py), or one that cannot be reached, instead
    of letting tests fail one by one on what the old server lacks."""
    if all("domain" in item.path.parts for item in session.items):
        return  # the domain's tests touch neither server
    database = settings.DATABASES["default"]
    where = (
        f" (DATABASE_URL host {database.get('HOST') or 'local'}, REDIS_URL {settings.REDIS_URL})"
    )
    try:
        with _server_connection(database) as conn, conn.cursor() as cursor:
            problems = servers.check_connections(
                cursor=cursor, redis_client=get_redis(), where=where
            )
    except (psycopg.Error, redis.RedisError) as exc:
        problems = [f"Cannot reach the test servers{where}: {exc}"]
    if problems:
        pytest.exit("\n".join(problems), returncode=pytest.ExitCode.USAGE_ERROR)


def _server_connection(database: Mapping[str, Any], **extra: Any) -> psycopg.Connection[Any]:
    """A connection to the server of ``database``: its database if it exists yet, else the
    ``postgres`` one (pytest-django creates the test database from there too)."""
    params = {
        **extra,
        "user": database.get("USER") or None,
        "password": database.get("PASSWORD") or None,
        "host": database.get("HOST") or None,
        "port": database.get("PORT") or None,
        "connect_timeout": 5,
    }
    try:
        return psycopg.connect(dbname=database["NAME"], **params)
    except psycopg.OperationalError:
        return psycopg.connect(dbname="postgres", **params)


@pytest.fixture(autouse=True)
def _clean_redis(request: pytest.FixtureRequest) -> None:
    """Every test starts with the test stream, dead letters and cache keys gone.

    Domain tests touch neither Redis nor the database, so they are left alone.
    """
    if "domain" not in request.node.path.parts:
        _delete_test_keys(get_redis())
        # Redis empty and no session revoked yet: its session markers are complete.
        session_store.mark_warm()


def _delete_test_keys(client: Any) -> None:
    prefixes = {
        settings.EVENT_STREAM,
        settings.DEAD_LETTER_STREAM,
        settings.CACHES["default"]["KEY_PREFIX"],
    }
    for prefix in prefixes:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup: None, django_db_blocker: Any) -> Iterator[None]:
    """pytest-django's test database, and before it is dropped, the end of the sessions
    other threads left open on it (the outbox publisher, Channels' database threads)."""
    yield
    left = live.stop_all_spawned()
    if left:
        warnings.warn(
            f"live processes {left} were still running at the end of the session (stopped"
            " now): a fixture did not stop what it spawned",
            stacklevel=1,
        )
    relay.stop_publisher()
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


# How long the flush between transactional tests waits for a table lock before it reports
# who holds it and ends those sessions (a leaked transaction must not wedge the run).
FLUSH_LOCK_TIMEOUT = "15s"


def _flush_guarded(original: Callable[..., None]) -> Callable[..., None]:
    """The flush between transactional tests TRUNCATEs every table at once.

    - A live server or worker process of an e2e test (still running: its fixture is
      module-scoped) may hold a row lock in a maintenance transaction and wait on a table
      the TRUNCATE already locked. PostgreSQL then aborts one of the two; when it is the
      flush, retry.
    - A session left idle in a transaction (a test's, a thread's, a process's) would make
      every later flush wait forever. With a lock timeout the flush fails instead, naming
      the sessions in a transaction (``application_name``: ``lokaly-live-<name>`` for the
      processes of tests/live.py), and ends them so the tests after this one run.
    """

    def execute_sql_flush(self: Any, sql_list: Any) -> None:
        with self.connection.cursor() as cursor:
            cursor.execute(f"SET lock_timeout = '{FLUSH_LOCK_TIMEOUT}'")
        try:
            for attempt in range(5):
                try:
                    return original(self, sql_list)
                except OperationalError as exc:
                    if "lock timeout" in str(exc):
                        raise OperationalError(_end_blocking_sessions(self.connection)) from exc
                    if "deadlock" not in str(exc) or attempt == 4:
                        raise
                    time.sleep(0.2 * (attempt + 1))
            return None
        finally:
            with self.connection.cursor() as cursor:
                cursor.execute("RESET lock_timeout")

    return execute_sql_flush


def _end_blocking_sessions(db: Any) -> str:
    with db.cursor() as cursor:
        cursor.execute(
            "SELECT pid, application_name, state, now() - xact_start, left(query, 200),"
            " pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            " AND xact_start IS NOT NULL"
        )
        sessions = cursor.fetchall()
    listed = "; ".join(
        f"pid {pid} ({name or 'no application_name'}, {state} for {age}): {query!r}"
        for pid, name, state, age, query, _ in sessions
    )
    return (
        f"The flush after this test waited {FLUSH_LOCK_TIMEOUT} for a table lock. Sessions in"
        f" a transaction on the test database, now ended: {listed or 'none left'}. Something"
        " this test (or a live process of its module) started left its transaction open."
    )


@pytest.fixture(scope="session", autouse=True)
def _flush_never_waits_forever() -> Iterator[None]:
    from django.db.backends.base.operations import BaseDatabaseOperations

    original = BaseDatabaseOperations.execute_sql_flush
    BaseDatabaseOperations.execute_sql_flush = _flush_guarded(original)  # type: ignore[method-assign]
    yield
    BaseDatabaseOperations.execute_sql_flush = original  # type: ignore[method-assign]


@pytest.fixture
def debug(settings: Any) -> Any:
    """pytest-django's ``settings`` with DEBUG on, as under ``make dev``
    (tests/{public,admin}/test_errors_debug.py)."""
    settings.DEBUG = True
    return settings


@pytest.fixture
def redis_client() -> Any:
    return get_redis()


def wait_until(
    predicate: Callable[[], Any], *, timeout: float = 10.0, interval: float = 0.02
) -> Any:
    """Poll until ``predicate()`` is truthy; fail with a clear message at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: {predicate}")
        time.sleep(interval)


def stream_envelopes(client: Any | None = None) -> list[Envelope]:
    client = client or get_redis()
    return [
        Envelope.from_json(fields[b"envelope"])
        for _id, fields in cast("list[StreamEntry]", client.xrange(settings.EVENT_STREAM, "-", "+"))
    ]


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


def client_for(user: User) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_pair(PUBLIC, user)['access']}")
    return client


@pytest.fixture
def customer(db: None) -> User:
    return UserFactory.create(role=Role.CUSTOMER)


@pytest.fixture
def courier(db: None) -> User:
    return UserFactory.create(role=Role.COURIER)


@pytest.fixture
def customer_client(customer: User) -> APIClient:
    return client_for(customer)


@pytest.fixture
def courier_client(courier: User) -> APIClient:
    return client_for(courier)


@pytest.fixture
def store(db: None) -> Any:
    return StoreFactory.create()


@pytest.fixture
def stocked(store: Any) -> Callable[..., Any]:
    """``stocked(on_hand=10, price_cents=129)`` -> a Stock row of a new product in ``store``."""

    def make(on_hand: int = 10, price_cents: int = 129, **product: Any) -> Any:
        return StockFactory.create(
            store=store,
            product=ProductFactory.create(price_cents=price_cents, **product),
            on_hand=on_hand,
        )

    return make


def order_body(store_id: Any, *items: tuple[Any, int], **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "store_id": str(store_id),
        "items": [{"product_id": str(pid), "quantity": qty} for pid, qty in items],
        "delivery_address": {
            "line1": "Keizersgracht 1",
            "city": "Amsterdam",
            "postal_code": "1015 CJ",
            "lat": 52.37,
            "lng": 4.89,
        },
    }
    body.update(extra)
    return body
