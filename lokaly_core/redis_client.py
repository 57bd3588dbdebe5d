"""One Redis client (and connection pool) per process, built from settings on first use."""

from __future__ import annotations

import threading

import redis
from django.conf import settings

# redis-py 6.4 annotates each command once for its sync and its asyncio client, so every
# reply is typed ``Awaitable[Any] | Any`` (redis/redis-py#3497). The sync client returns
# the reply itself: callers ``typing.cast`` it to what the command returns.
StreamEntry = tuple[bytes, dict[bytes, bytes]]  # (entry id, fields), as XRANGE gives them

_lock = threading.Lock()
_clients: dict[str, redis.Redis] = {}


def get_redis() -> redis.Redis:
    url: str = settings.REDIS_URL
    client = _clients.get(url)
    if client is None:
        with _lock:
            client = _clients.get(url)
            if client is None:
                client = redis.Redis.from_url(
                    url, socket_connect_timeout=2, socket_timeout=5, health_check_interval=30
                )
                _clients[url] = client
    return client
