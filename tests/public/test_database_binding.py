"""The database connection: server-side binding with prepared statements
(``lokaly_core/conf/base.py``), and integers that never wrap around on the way in
(``lokaly_core/db/postgresql/base.py``)."""

from __future__ import annotations

import pytest
from django.db import DataError, connection, transaction

from lokaly_core.inventory.models import Stock
from lokaly_core.notifications.models import Notification
from tests.factories import StockFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_statement_run_often_is_prepared_once_per_connection() -> None:
    # given a statement run more often than the prepare threshold
    stock = StockFactory.create(on_hand=3)
    for _ in range(8):
        assert Stock.objects.filter(pk=stock.pk).values_list("on_hand", flat=True).get() == 3

    # then the connection holds it as a prepared statement (PostgreSQL plans it once)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s",
            ['%"core_stock"."on_hand"%'],
        )
        assert cursor.fetchone() == (1,)


@pytest.mark.parametrize(
    "write",
    [
        pytest.param(lambda s: Stock.objects.filter(pk=s.pk).update(on_hand=2**31 + 10), id="int4"),
        pytest.param(
            lambda s: Stock.objects.filter(pk=s.pk).update(on_hand=-(2**31) - 1), id="int4-"
        ),
        pytest.param(
            lambda s: Notification.objects.create(
                user=UserFactory.create(), type="t", title="t", body="b", send_attempts=2**15
            ),
            id="int2",
        ),
    ],
)
def test_an_integer_past_its_columns_range_is_refused_not_wrapped(write) -> None:
    # given a stock row, and a write of a value its integer column cannot hold
    stock = StockFactory.create(on_hand=7)

    # then the database refuses it (psycopg's sized ints would wrap it around in binary)
    with pytest.raises(DataError, match="out of range"), transaction.atomic():
        write(stock)
    stock.refresh_from_db()
    assert stock.on_hand == 7
    assert not Notification.objects.exists()
