"""Django's Redis cache, with one client and one connection pool per server per process.

Django's ``caches`` hands out a cache object per thread *and per context*
(``asgiref.local.Local``), and a2wsgi runs every request in a copy of the context, so
each request got a fresh ``RedisCache`` with an empty pool: one TCP connect, a
``getaddrinfo`` and a handshake to Redis per rate-limited request (10 % of a public
process's CPU under load, docs/performance.md "The cache's connections"). Django's
``RedisCacheClient.get_client`` also builds a new ``redis.Redis`` for every call, and
redis-py fills its response-callback table each time (~0.2 ms of CPU per call).

Here the client, and so its pool, is shared by every cache object of the process with
the same server and options. redis-py's pool is thread safe and re-creates itself after
a fork (``ConnectionPool._checkpid``).
"""

from __future__ import annotations

import threading
from typing import Any

from django.core.cache.backends.redis import RedisCache, RedisCacheClient

_clients: dict[tuple[str, str], Any] = {}
_clients_lock = threading.Lock()


class PooledRedisCacheClient(RedisCacheClient):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._mine: dict[int, Any] = {}  # this object's view of the shared clients

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        # Private members of Django's RedisCacheClient, which django-stubs leaves out.
        index = self._get_connection_pool_index(write)  # type: ignore[attr-defined]
        client = self._mine.get(index)
        if client is None:
            client = self._mine[index] = self._shared_client(index)
        return client

    def _shared_client(self, index: int) -> Any:
        server = self._servers[index]  # type: ignore[attr-defined]
        options = self._pool_options  # type: ignore[attr-defined]
        shared = (server, repr(sorted(options.items())))
        client = _clients.get(shared)
        if client is None:
            with _clients_lock:
                client = _clients.get(shared)
                if client is None:
                    pool = self._pool_class.from_url(server, **options)  # type: ignore[attr-defined]
                    client = _clients[shared] = self._client(connection_pool=pool)  # type: ignore[attr-defined]
        return client


class PooledRedisCache(RedisCache):
    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = PooledRedisCacheClient
