"""The rate limiter's Redis connections are kept, not made per request.

a2wsgi runs every request in a copy of the context, where Django's ``caches`` hands out a
fresh cache object; each used to bring an empty connection pool, so every API request
opened (and dropped) a TCP connection to Redis (lokaly_core/cache.py).
"""

from __future__ import annotations

import contextvars
import threading

import pytest
import redis.connection
from django.test import override_settings


@pytest.fixture
def redis_connects(monkeypatch) -> list[str]:
    """The Redis connections this test's thread opens (a spy: each still connects)."""
    opened: list[str] = []
    connect = redis.connection.Connection._connect
    me = threading.get_ident()

    def counting_connect(self):
        if threading.get_ident() == me:
            opened.append(f"{self.host}:{self.port}/{self.db}")
        return connect(self)

    monkeypatch.setattr(redis.connection.Connection, "_connect", counting_connect)
    return opened


@pytest.mark.django_db
def test_requests_in_fresh_contexts_reuse_the_rate_limiters_redis_connection(
    customer_client, redis_connects
):
    requests = 40
    with override_settings(RATELIMIT_ENABLE=True, PUBLIC_RATE_LIMIT="30/m"):
        # a first request opens what the process keeps
        assert customer_client.get("/api/stores").status_code == 200
        before = len(redis_connects)

        # when each request runs in a context where this thread's caches were never set:
        # a2wsgi runs each in a copy of the event loop task's context
        statuses = [
            contextvars.Context().run(customer_client.get, "/api/stores").status_code
            for _ in range(requests)
        ]

        opened = len(redis_connects) - before

    # the limiter still counts across contexts: 30 a minute, the first one included
    assert statuses == [200] * 29 + [429] * 11

    # and the connection the first request opened served them all
    assert opened == 0, f"{opened} Redis connections for {requests} requests"
