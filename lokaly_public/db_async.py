"""The order socket's admission read, made in the event loop on psycopg's async
connections (docs/performance.md, sixth session).

Every app opens its order's socket right after the 201, and the handshake reads the order
once (``lokaly_core.orders.tracking``). Through Django's connection that read needs a
thread: ``database_sync_to_async`` cost 150 us of CPU around a trivial call and 270 us
around a ``SELECT 1`` on this machine; awaited here, the ``SELECT 1`` costs 100-120 us,
and no socket waits for the one thread Channels' database calls share.

The connections are Django's, as its backend makes them (``get_connection_params``: the
same database, its loaders, jsonb as text and timestamps in UTC), in autocommit, in a
pool per event loop (``psycopg_pool``): one per server process, one per test's loop.
``PUBLIC_SOCKET_DB_CONNECTIONS`` caps each pool. A connection that broke (a server
restart, a session ended) is dropped by the pool, and its statement run once more on
another connection, once the pool checked the others.
"""

from __future__ import annotations

import asyncio
import weakref
from dataclasses import dataclass
from typing import Any

import psycopg
from django.conf import settings
from django.db import connection
from psycopg_pool import AsyncConnectionPool


@dataclass
class _LoopPool:
    pool: AsyncConnectionPool[Any]
    # Every connection the pool made: a pool whose loop is gone cannot close them by
    # itself (its closing needs its loop), so they are ended here (``_forget_closed``).
    made: weakref.WeakSet[psycopg.AsyncConnection[Any]]


_pools: dict[asyncio.AbstractEventLoop, asyncio.Task[_LoopPool]] = {}
# What pg_stat_activity shows for these connections (unless OPTIONS names one).
APPLICATION_NAME = "lokaly-socket-reads"


async def fetch_one(sql: str, params: dict[str, Any]) -> tuple[Any, ...] | None:
    """The first row of ``sql`` (one statement, autocommit), or None."""
    pool = (await _pool()).pool
    async with pool.connection() as conn:
        try:
            return await _first_row(conn, sql, params)
        except psycopg.OperationalError:
            if not conn.broken:
                raise
    # The pool drops the broken one; the others idle may have ended with it (a server
    # restart): checked before the statement runs again, once.
    await pool.check()
    async with pool.connection() as conn:
        return await _first_row(conn, sql, params)


async def _first_row(
    conn: psycopg.AsyncConnection[Any], sql: str, params: dict[str, Any]
) -> tuple[Any, ...] | None:
    cursor = await conn.execute(sql, params)
    return await cursor.fetchone()


async def _pool() -> _LoopPool:
    loop = asyncio.get_running_loop()
    opening = _pools.get(loop)
    if opening is None:  # the first handshake of this loop opens it; the others wait
        _forget_closed()
        opening = _pools[loop] = loop.create_task(_open())
    try:
        return await asyncio.shield(opening)
    except BaseException:
        if opening.done() and _pools.get(loop) is opening:  # the next handshake tries again
            del _pools[loop]
        raise


async def _open() -> _LoopPool:
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)  # Django's is a sync cursor
    params.setdefault("application_name", APPLICATION_NAME)
    made: weakref.WeakSet[psycopg.AsyncConnection[Any]] = weakref.WeakSet()

    async def configure(conn: psycopg.AsyncConnection[Any]) -> None:
        made.add(conn)

    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        kwargs={**params, "autocommit": True},
        min_size=1,
        max_size=max(1, int(settings.PUBLIC_SOCKET_DB_CONNECTIONS)),
        configure=configure,
        open=False,
        name=APPLICATION_NAME,
    )
    try:
        await pool.open(wait=True, timeout=10)
    except BaseException:
        await pool.close()
        raise
    return _LoopPool(pool, made)


def _forget_closed() -> None:
    """End the connections of pools whose event loop is closed (a server has one loop
    for its lifetime; the test suite one per test)."""
    for loop in [loop for loop in _pools if loop.is_closed()]:
        opening = _pools.pop(loop)
        if opening.done() and not opening.cancelled() and opening.exception() is None:
            for conn in list(opening.result().made):
                conn.pgconn.finish()
