"""The outbox publisher thread recovers from a connection that failed half-way through
connecting (socket open, autocommit never set): the next batch reconnects instead of
running its UPDATE in a transaction nobody commits.

It happened in the test suite (pytest-django's database blocker raised in the thread
between two tests) and left a session idle in a transaction holding row locks, so the
flush after the next transactional test waited forever.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.db import connection
from django.db.backends.postgresql.base import DatabaseWrapper

from lokaly_core.outbox import relay
from lokaly_core.outbox.models import OutboxEvent
from tests.conftest import wait_until
from tests.worker.test_commit_publish import _place

pytestmark = pytest.mark.django_db(transaction=True)


def _published(order_id: Any) -> bool:
    return OutboxEvent.objects.filter(aggregate_id=order_id, published_at__isnull=False).exists()


def test_a_half_failed_connect_in_the_publisher_is_not_reused(
    customer: Any, stocked: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a new publisher thread whose first connect fails after the socket opened
    relay.stop_publisher()
    connection.close()  # this thread's too: only the publisher's connect is to fail
    stock = stocked(on_hand=5)
    failed = threading.Event()
    set_autocommit = DatabaseWrapper.set_autocommit

    def fail_once_in_the_publisher(self: Any, *args: Any, **kwargs: Any) -> None:
        if threading.current_thread().name == "outbox-publisher" and not failed.is_set():
            failed.set()
            raise RuntimeError("Database access not allowed (as pytest-django's blocker says)")
        set_autocommit(self, *args, **kwargs)

    monkeypatch.setattr(DatabaseWrapper, "set_autocommit", fail_once_in_the_publisher)
    first = _place(customer, stock)
    wait_until(failed.is_set)

    # when the next order's event is published by the same thread
    second = _place(customer, stock)

    # then it is marked published (committed), and no session sits in a transaction
    wait_until(lambda: _published(second.id), timeout=5)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND state LIKE 'idle in transaction%%'"
        )
        assert cursor.fetchone() == (0,)
    assert not _published(first.id)  # its mark failed; the sweep publishes it again later
    assert OutboxEvent.objects.filter(published_at__isnull=True).count() == 1
