"""The flush between transactional tests never waits forever on a session left in a
transaction: it fails within its lock timeout, names the session, and ends it, so the
tests after it run (tests/conftest.py)."""

from __future__ import annotations

import psycopg
import pytest
from django.conf import settings
from django.core.management.color import no_style
from django.db import OperationalError, connection

from tests import conftest
from tests.factories import StoreFactory


@pytest.mark.timeout(60)
@pytest.mark.django_db(transaction=True)
def test_a_session_left_in_a_transaction_fails_the_flush_fast_and_is_ended(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given a store row locked by another session that then sits idle in its transaction
    monkeypatch.setattr(conftest, "FLUSH_LOCK_TIMEOUT", "1s")
    StoreFactory()
    leaked = conftest._server_connection(
        settings.DATABASES["default"], application_name="lokaly-live-leaker"
    )
    leaked.execute("SELECT id FROM core_store FOR UPDATE")

    # when the flush between tests runs
    tables = connection.introspection.django_table_names(only_existing=True)
    flush = connection.ops.sql_flush(no_style(), tables)
    with pytest.raises(OperationalError, match="lokaly-live-leaker.*idle in transaction"):
        connection.ops.execute_sql_flush(flush)

    # then the leaked session was ended, and the next flush goes through
    with pytest.raises(psycopg.OperationalError):
        leaked.execute("SELECT 1")
    connection.ops.execute_sql_flush(flush)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM core_store")
        assert cursor.fetchone() == (0,)
