"""A worker batch's statements have the same text whatever the batch's size.

psycopg caches the parse of a statement's text (its placeholders) only for texts it has
seen, and only up to 50 parameters; a ``VALUES`` list of n rows is a new text for every n,
and parsing those texts was a quarter of the worker's CPU (docs/performance.md, "Issue 10,
fourth session"). The batch statements pass one array per column instead
(``lokaly_core.sql.unnest``, ``recordset``).
"""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection

from lokaly_core.orders.models import Order
from tests.conftest import order_body, wait_until
from tests.worker.conftest import make_worker

pytestmark = pytest.mark.django_db(transaction=True)


def _drain(worker: Any, order_ids: list[str]) -> set[str]:
    """Every statement text the worker sent until the orders were confirmed and their
    follow-up events handled."""
    texts: set[str] = set()

    def record(execute: Any, sql: str, *rest: Any) -> Any:
        texts.add(sql)
        return execute(sql, *rest)

    def run_once() -> int:
        with connection.execute_wrapper(record):
            return int(worker.run_once())

    wait_until(lambda: run_once() >= 0 and _all_confirmed(order_ids))
    while run_once():  # their order.status_changed, inventory.reserved
        pass
    return texts


def _all_confirmed(order_ids: list[str]) -> bool:
    return Order.objects.filter(pk__in=order_ids, status="confirmed").count() == len(order_ids)


def test_a_bigger_batch_sends_no_statement_text_a_small_one_did_not(
    customer_client, stocked, redis_client, settings
) -> None:
    settings.MAX_OPEN_ORDERS_PER_CUSTOMER = 100
    stock = stocked(on_hand=1_000)
    worker = make_worker(batch=100)
    worker.ensure_group()

    def place(n: int) -> list[str]:
        return [
            customer_client.post("/api/orders", order_body(stock.store_id, (stock.product_id, 1)))
            .json()["id"]
            for _ in range(n)
        ]

    # given a batch of 2 orders, then one of 24, each drained by the worker
    small = _drain(worker, place(2))
    big = _drain(worker, place(24))

    # then the big one used only the small one's statement texts
    new = sorted(text[:160] for text in big - small)
    assert not new, f"{len(new)} statement texts only a bigger batch sent: {new}"
