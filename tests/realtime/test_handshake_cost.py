"""The socket handshake's cost (docs/performance.md, "Sockets at scale"): every app opens
its order's socket right after the 201, so what the handshake reads is pinned here.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import channels.generic.websocket
import psycopg
import pytest
import redis
from asgiref.sync import sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from lokaly_core.accounts.tokens import PUBLIC, issue_pair
from lokaly_core.domain.services import order_reserve_stock
from lokaly_core.orders import selectors
from lokaly_core.orders.tracking import WATCHED_SQL, watched_order
from lokaly_core.orders.uow import DjangoUnitOfWork
from lokaly_public import consumers, db_async
from lokaly_public.routing import websocket_urlpatterns
from tests.conftest import client_for, order_body, wait_until
from tests.factories import StockFactory, UserFactory, courier_on_shift, dispatch_confirmed

pytestmark = pytest.mark.django_db(transaction=True)

app = URLRouter(websocket_urlpatterns)


def _confirmed_order() -> tuple[str, str]:
    """A customer's confirmed order (status_version 2) and the customer's token."""
    stock = StockFactory.create(on_hand=5)
    customer = UserFactory.create()
    response = client_for(customer).post(
        "/api/orders", order_body(stock.store_id, (stock.product_id, 1)), format="json"
    )
    order_id = response.json()["id"]
    order_reserve_stock(uow=DjangoUnitOfWork(), clock=timezone.now, order_id=order_id)
    return order_id, issue_pair(PUBLIC, customer)["access"]


async def _handshake_and_close(order_id: str, token: str) -> list[dict[str, Any]]:
    """Connect with ``since=0``, read the snapshot and the two replayed changes, close."""
    ws = WebsocketCommunicator(app, f"/ws/orders/{order_id}/?token={token}&since=0")
    connected, _ = await ws.connect(timeout=5)
    assert connected
    received = [json.loads(await ws.receive_from(timeout=5)) for _ in range(3)]
    await ws.disconnect()
    return received


@pytest.mark.parametrize("assigned", [False, True])
def test_snapshot_is_the_order_as_the_api_renders_it(assigned: bool) -> None:
    # given an order without a delivery, or with its courier assigned
    stock = StockFactory.create(on_hand=5)
    customer = UserFactory.create()
    courier = courier_on_shift()
    response = client_for(customer).post(
        "/api/orders", order_body(stock.store_id, (stock.product_id, 2)), format="json"
    )
    order_id = response.json()["id"]
    if assigned:
        dispatch_confirmed(order_id)

    # when the socket reads it
    watched = watched_order(order_id=order_id, watcher_id=courier.id, since=0)

    # then it is the order of the REST API, with the whole history after version 0
    assert watched is not None
    order = selectors.orders_with_lines().get(pk=order_id)
    assert watched.order == selectors.order_to_dict(order)
    assert watched.missed == selectors.order_history(order.id, after_version=0)
    assert watched.customer_id == customer.id
    assert watched.watcher_delivers is assigned
    assert (watched.order["delivery"] is not None) is assigned


async def test_handshake_reads_the_order_once_and_checks_the_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    order_id, token = await sync_to_async(_confirmed_order)()
    await _handshake_and_close(order_id, token)  # warm-up: the layer's connections
    statements = _count_async_statements(monkeypatch)
    # Django's connections (none should be used): capture in the thread sync_to_async uses
    captured = CaptureQueriesContext(connection)
    await sync_to_async(captured.__enter__)()
    try:
        received = await _handshake_and_close(order_id, token)
    finally:
        await sync_to_async(captured.__exit__)(None, None, None)
    # captured_queries reads the connection of the thread it is called in
    queries = await sync_to_async(lambda: [q["sql"] for q in captured.captured_queries])()

    assert [m["type"] for m in received] == [
        "order.snapshot",
        "order.status_changed",
        "order.status_changed",
    ]
    assert [m["status_version"] for m in received[1:]] == [1, 2]
    # the order and the account's role in one statement (consumers._admit), in the loop
    assert statements == [WATCHED_SQL]
    assert queries == []


async def test_handshake_makes_no_thread_hop(monkeypatch: pytest.MonkeyPatch) -> None:
    order_id, token = await sync_to_async(_confirmed_order)()
    await _handshake_and_close(order_id, token)  # warm-up
    hops: list[str] = []
    real = consumers.database_sync_to_async

    def counted(func: Any) -> Any:
        hops.append(getattr(func, "__name__", repr(func)))
        return real(func)

    monkeypatch.setattr(consumers, "database_sync_to_async", counted)

    received = await _handshake_and_close(order_id, token)

    # the admission read is awaited in the event loop (lokaly_public.db_async), not sent
    # to the one thread Channels' database calls share
    assert received[0]["type"] == "order.snapshot"
    assert hops == []


async def test_socket_reads_survive_their_connections_ending() -> None:
    # given handshakes served, then every connection of the socket reads' pool ended (a
    # server restart, an idle timeout)
    order_id, token = await sync_to_async(_confirmed_order)()
    await _handshake_and_close(order_id, token)
    ended = await sync_to_async(_socket_read_sessions)(end=True)
    assert ended >= 1

    # when the next handshake comes, then it is served as before
    received = await _handshake_and_close(order_id, token)
    assert [m["type"] for m in received][0] == "order.snapshot"


def test_pools_of_closed_event_loops_leave_no_session_behind() -> None:
    # given an order, and handshakes served in five event loops one after the other (as
    # the test suite's loops are; a server has one)
    order_id, token = _confirmed_order()
    for _ in range(5):
        asyncio.run(_handshake_and_close(order_id, token))

    # then only the last loop's pool holds connections: the others' were ended (a
    # backend leaves pg_stat_activity shortly after its client hung up)
    limit = settings.PUBLIC_SOCKET_DB_CONNECTIONS
    assert wait_until(lambda: 1 <= _socket_read_sessions() <= limit, timeout=5), (
        _socket_read_sessions()
    )


def _count_async_statements(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every statement sent on psycopg's async cursors (the socket reads' pool)."""
    sent: list[str] = []
    real = psycopg.AsyncCursor.execute

    async def execute(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append(str(query))
        return await real(self, query, *args, **kwargs)

    monkeypatch.setattr(psycopg.AsyncCursor, "execute", execute)
    return sent


def _socket_read_sessions(*, end: bool = False) -> int:
    """How many sessions the socket reads' pools hold on the test database; with ``end``,
    each is ended (``pg_terminate_backend``) and counted."""
    counted = "count(*) FILTER (WHERE pg_terminate_backend(pid))" if end else "count(*)"
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {counted} FROM pg_stat_activity "  # noqa: S608 - one of two texts
            "WHERE datname = current_database() AND application_name = %s",
            [db_async.APPLICATION_NAME],
        )
        return int(cursor.fetchone()[0])


async def test_close_makes_no_thread_hop(monkeypatch: pytest.MonkeyPatch) -> None:
    order_id, token = await sync_to_async(_confirmed_order)()
    await _handshake_and_close(order_id, token)  # warm-up
    hops: list[str] = []
    real = channels.generic.websocket.aclose_old_connections

    async def counted() -> None:
        hops.append("close_old_connections")
        await real()

    monkeypatch.setattr(channels.generic.websocket, "aclose_old_connections", counted)

    await _handshake_and_close(order_id, token)

    # Channels' websocket_disconnect sends close_old_connections to the sync thread at
    # every close; this consumer does no database work on its own thread (consumers.py)
    assert hops == []


@contextmanager
def _redis_commands() -> Iterator[list[str]]:
    """Every command sent to REDIS_URL's database while inside (Redis MONITOR)."""
    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=0.2)
    db = client.connection_pool.connection_kwargs.get("db", 0)
    commands: list[str] = []
    stop = threading.Event()
    ready = threading.Event()

    def listen() -> None:
        with client.monitor() as monitor:
            ready.set()
            while not stop.is_set():
                try:
                    entry = monitor.next_command()
                except (redis.TimeoutError, TimeoutError):
                    continue
                # commands a script runs are listed too: count what clients send
                if int(entry["db"]) == int(db) and entry.get("client_type") != "lua":
                    commands.append(entry["command"])

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    assert ready.wait(5)
    try:
        yield commands
    finally:
        stop.set()
        thread.join(5)
        client.close()


def _user_of(token: str) -> str:
    from lokaly_core.accounts.tokens import validate_access

    return str(validate_access(PUBLIC, token)["user_id"])


async def _wait_for(commands: list[str], prefix: str, count: int, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while sum(c.startswith(prefix) for c in commands) < count:
        assert time.monotonic() < deadline, commands
        await asyncio.sleep(0.02)


async def test_handshake_and_close_send_at_most_four_redis_commands() -> None:
    order_id, token = await sync_to_async(_confirmed_order)()
    await _handshake_and_close(order_id, token)  # warm-up: the layer's connections

    with _redis_commands() as commands:
        await _handshake_and_close(order_id, token)
        await _wait_for(commands, "UNSUBSCRIBE", 1)
        await _wait_for(commands, "ZREM", 1)

    # the order's group and the account's group in one SUBSCRIBE and one UNSUBSCRIBE
    # (lokaly_public.channel_layer), and nothing for the socket's own channel; the
    # handshake counted in the IP's rate limit, the session's revocation marker read and
    # the account's socket slot taken (one script, ws_guard.claim_handshake), the slot
    # released (ZREM)
    assert len(commands) <= 4, commands
    subscribes = [c.split()[1:] for c in commands if c.startswith("SUBSCRIBE")]
    unsubscribes = [c.split()[1:] for c in commands if c.startswith("UNSUBSCRIBE")]
    groups = {f"asgi__group__order.{order_id}", f"asgi__group__account.{_user_of(token)}"}
    assert [set(s) for s in subscribes] == [groups], commands
    assert [set(u) for u in unsubscribes] == [groups], commands
