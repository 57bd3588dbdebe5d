"""Waiting orders cost nothing while they wait: with no courier free, the worker's turn
over the dispatch queue is one indexed read however many orders wait, and the due-order
scan reads the queue's index in order and stops at its limit (bench/dispatch_queue.py has
the figures at 10,000 waiting orders)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from lokaly_core.delivery.models import DispatchTask
from lokaly_core.delivery.repositories import waiting_orders, waiting_orders_query
from lokaly_core.orders.models import Order
from lokaly_worker.dispatch import QUEUE_PASS_LIMIT, dispatch_confirmed, dispatch_waiting
from tests.factories import ProductFactory, StoreFactory, UserFactory, courier_on_shift

pytestmark = pytest.mark.django_db(transaction=True)

WAITING = 2_000


def _queue_of_confirmed_orders(count: int, *, queued: bool = True) -> None:
    """``count`` confirmed orders with a line each, oldest first; ``queued``: all waiting
    in the dispatch queue and due."""
    store, product = StoreFactory.create(), ProductFactory.create()
    customer = UserFactory.create()
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO core_order (id, number, customer_id, store_id, status, status_version,
                subtotal_cents, delivery_fee_cents, total_cents, currency, delivery_address,
                note, cancel_reason, stock_state, created_at, updated_at)
            SELECT gen_random_uuid(), 'W-' || lpad(n::text, 7, '0'), %(customer)s,
                   %(store)s, 'confirmed', 2, 258, 199, 457, 'EUR',
                   '{"line1": "1", "city": "A", "postal_code": "1", "lat": 52.37,
                     "lng": 4.89, "line2": ""}'::jsonb, '', NULL, 'reserved',
                   now() - n * interval '1 second', now() - n * interval '1 second'
            FROM generate_series(1, %(count)s) AS n
            """,
            {"customer": customer.id, "store": store.id, "count": count},
        )
        cursor.execute(
            """
            INSERT INTO core_orderline (order_id, product_id, name, quantity,
                                        unit_price_cents, line_total_cents)
            SELECT id, %(product)s, 'Milk', 2, 129, 258 FROM core_order
            """,
            {"product": product.id},
        )
        if queued:
            cursor.execute(
                "INSERT INTO core_dispatchtask (order_id, attempts, next_attempt_at, created_at)"
                " SELECT id, 1, now() - interval '1 second', created_at FROM core_order;"
                " ANALYZE core_dispatchtask"
            )


def _plan_nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [plan, *(node for child in plan.get("Plans", []) for node in _plan_nodes(child))]


def test_with_no_courier_free_a_turn_over_the_queue_is_one_read_and_changes_nothing() -> None:
    # given 2,000 confirmed orders waiting, all due, and no courier on shift
    _queue_of_confirmed_orders(WAITING)
    before = list(DispatchTask.objects.order_by("pk").values_list("pk", "attempts"))

    # when the worker's turn serves the due orders
    with CaptureQueriesContext(connection) as queries:
        assigned = dispatch_waiting(due_only=True, event_id=None, via="test")

    # then it asked once whether anybody is free, and touched no order
    assert assigned == 0
    assert len(queries) == 1, [q["sql"] for q in queries]
    assert list(DispatchTask.objects.order_by("pk").values_list("pk", "attempts")) == before


def test_a_free_courier_gets_the_longest_waiting_order() -> None:
    _queue_of_confirmed_orders(WAITING)
    oldest = waiting_orders(limit=1, due_only=True)[0]
    courier = courier_on_shift()

    assert dispatch_waiting(due_only=True, event_id=None, via="test") == 1

    assert not DispatchTask.objects.filter(pk=oldest).exists()
    assert DispatchTask.objects.count() == WAITING - 1
    assert courier.courier_state.current_delivery.order_id == oldest  # type: ignore[union-attr]


def test_the_due_order_scan_is_an_index_scan_that_stops_at_its_limit() -> None:
    _queue_of_confirmed_orders(WAITING)
    sql, params = waiting_orders_query(limit=QUEUE_PASS_LIMIT, due_only=True)

    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", params)
        (plan,) = cursor.fetchone()[0]
    nodes = _plan_nodes(plan["Plan"] if isinstance(plan, dict) else json.loads(plan)["Plan"])

    assert nodes[0]["Node Type"] == "Limit"
    scans = [n for n in nodes if n.get("Relation Name") == "core_dispatchtask"]
    assert [n["Node Type"] for n in scans] in (["Index Scan"], ["Index Only Scan"]), nodes
    assert scans[0]["Index Name"] == "dispatch_wait_idx"
    assert not any(n["Node Type"] == "Sort" for n in nodes)
    assert scans[0]["Actual Rows"] == QUEUE_PASS_LIMIT  # read up to the limit, not 2,000


def _confirmations() -> list[tuple[Any, Any]]:
    return [
        (order_id, uuid.uuid4())
        for order_id in Order.objects.order_by("created_at").values_list("id", flat=True)
    ]


def test_a_batch_of_confirmations_with_nobody_free_joins_the_queue_in_one_statement() -> None:
    # given 50 newly confirmed orders, one of them cancelled meanwhile, and no courier free
    _queue_of_confirmed_orders(50, queued=False)
    confirmations = _confirmations()
    cancelled = confirmations[7][0]
    Order.objects.filter(pk=cancelled).update(status="cancelled")

    # when the worker's batch dispatches them
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        dispatch_confirmed(confirmations, via="test")

    # then one check for a free courier and one upsert queued the 49 still confirmed
    assert len(queries) == 2, [q["sql"] for q in queries]
    queued = dict(DispatchTask.objects.values_list("order_id", "attempts"))
    assert set(queued) == {order_id for order_id, _ in confirmations} - {cancelled}
    assert set(queued.values()) == {1}
    assert DispatchTask.objects.filter(next_attempt_at__lte=timezone.now()).count() == 0


def test_a_batch_of_confirmations_with_a_courier_free_gives_the_first_one_the_courier() -> None:
    _queue_of_confirmed_orders(5, queued=False)
    confirmations = _confirmations()
    courier = courier_on_shift()

    with transaction.atomic():
        dispatch_confirmed(confirmations, via="test")

    first = confirmations[0][0]
    assert courier.courier_state.current_delivery.order_id == first  # type: ignore[union-attr]
    assert set(DispatchTask.objects.values_list("order_id", flat=True)) == {
        order_id for order_id, _ in confirmations[1:]
    }
