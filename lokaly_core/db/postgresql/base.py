"""Django's PostgreSQL backend, with ``CONN_HEALTH_CHECKS`` that cost no round trip per
request.

Django's check is a ``SELECT 1`` before the first query of every request (each request
start clears ``health_check_done``): on order intake, one round trip in five. Here a
persistent connection is checked locally on every request, and by the ``SELECT 1`` only
when that local check has doubts or ``DB_HEALTH_CHECK_SECONDS`` have passed since the
last one:

- psycopg must see the connection as open and idle;
- its socket must have nothing to read. Between requests the server sends nothing on
  its own, except when it ends the session (a restart, ``pg_terminate_backend``, an idle
  timeout), which it announces with a FATAL error and a close: readable.

So a server restart costs no failed request, as with Django's check. What only the
periodic ``SELECT 1`` catches is a connection that died without a word (a network
partition, a peer gone without closing); a request that finds one within the interval
fails, and Django closes the connection after it (``errors_occurred``).
"""

from __future__ import annotations

import select
import time
from typing import Any

import psycopg
from django.conf import settings
from django.db.backends.postgresql import base, operations
from psycopg import pq
from psycopg.types import numeric

# The range of each of psycopg's sized int wrappers.
_INT_LIMITS = {numeric.Int2: 2**15, numeric.Int4: 2**31, numeric.Int8: 2**63}


class DatabaseOperations(operations.DatabaseOperations):
    """Django wraps an integer field's value in psycopg's ``Int2``/``Int4``/``Int8``, and
    with server-side binding (``conf/base.py``) psycopg sends those in binary, where an
    out-of-range value wraps around silently: ``2**31 + 10`` became ``-2147483638`` in an
    ``integer`` column. An out-of-range value is passed as a plain ``int`` instead, which
    psycopg sends at its own size, so the column refuses it ("integer out of range"), as
    with client-side binding (tests/admin/test_stock.py)."""

    def adapt_integerfield_value(self, value: Any, internal_type: str) -> Any:
        adapted = super().adapt_integerfield_value(value, internal_type)
        limit = _INT_LIMITS.get(type(adapted))
        if limit is not None and not -limit <= int(adapted) < limit:
            return int(value)
        return adapted


class DatabaseWrapper(base.DatabaseWrapper):
    ops_class = DatabaseOperations
    _health_checked_at = 0.0

    def connect(self) -> None:
        super().connect()
        self._health_checked_at = time.monotonic()  # new connections are healthy

    def close_if_health_check_failed(self) -> None:
        # Django's own attributes, which django-stubs leaves out.
        django: Any = self
        if (
            self.connection is None
            or not django.health_check_enabled
            or django.health_check_done
            or django.pool
        ):
            return
        interval = float(getattr(settings, "DB_HEALTH_CHECK_SECONDS", 0))
        if time.monotonic() - self._health_checked_at < interval and self._looks_healthy():
            django.health_check_done = True
            return
        super().close_if_health_check_failed()
        self._health_checked_at = time.monotonic()

    def _looks_healthy(self) -> bool:
        pgconn = self.connection.pgconn
        if pgconn.status != pq.ConnStatus.OK:
            return False
        if pgconn.transaction_status != pq.TransactionStatus.IDLE:
            return False
        try:
            readable, _, _ = select.select([pgconn.socket], [], [], 0)
        except (OSError, ValueError, psycopg.Error):  # psycopg: "the connection is closed"
            return False
        return not readable
