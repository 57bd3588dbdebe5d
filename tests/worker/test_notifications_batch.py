"""The set-based notifications of a worker batch (``notify_for_events``): a batch of N
notifying events writes its notifications in a bounded number of statements (one read of
the orders' numbers, one multi-row insert), exactly the rows the per-event path
(``notify_for_event``) writes, and an event retried does not notify twice."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from lokaly_core.domain.model.orders import OUT_OF_STOCK, OrderStatus
from lokaly_core.events import (
    CourierAvailable,
    DeliveryAssigned,
    Envelope,
    EventPayload,
    OrderStatusChanged,
)
from lokaly_core.notifications.models import Notification
from lokaly_core.notifications.services import notify_for_event, notify_for_events
from lokaly_core.redis_client import get_redis
from lokaly_worker import handlers
from lokaly_worker.registry import registry
from tests.factories import StoreFactory, UserFactory
from tests.worker.conftest import make_worker

pytestmark = pytest.mark.django_db(transaction=True)

Pair = tuple[Envelope, EventPayload]

# The row as the API and the sender see it (id and timestamps aside: checked apart).
FIELDS = ("user_id", "type", "title", "body", "order_id", "event_id", "send_status")


def _orders(count: int) -> list[uuid.UUID]:
    """``count`` orders of one customer in a new store, numbered N<store>-000001..."""
    store, customer = StoreFactory.create(), UserFactory.create()
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO core_order (id, number, customer_id, store_id, status, status_version,
                subtotal_cents, delivery_fee_cents, total_cents, currency, delivery_address,
                note, cancel_reason, stock_state, created_at, updated_at)
            SELECT gen_random_uuid(), %(prefix)s || lpad(n::text, 6, '0'), %(customer)s,
                   %(store)s, 'out_for_delivery', 5, 258, 199, 457, 'EUR',
                   '{"line1": "1", "city": "A", "postal_code": "1", "lat": 52.37,
                     "lng": 4.89, "line2": ""}'::jsonb, '', NULL, 'reserved',
                   now() - n * interval '1 second', now() - n * interval '1 second'
            FROM generate_series(1, %(count)s) AS n
            RETURNING id
            """,
            {
                "prefix": f"N{store.id.hex[:3]}-",
                "customer": customer.id,
                "store": store.id,
                "count": count,
            },
        )
        return [row[0] for row in cursor.fetchall()]


def _customer_of(order_id: uuid.UUID) -> uuid.UUID:
    with connection.cursor() as cursor:
        cursor.execute("SELECT customer_id FROM core_order WHERE id = %s", [order_id])
        return uuid.UUID(str(cursor.fetchone()[0]))


def _events(order_ids: list[uuid.UUID]) -> list[Pair]:
    """Per order one event of each kind in turn: every notification type, and some that
    notify nobody (a status without a message, a courier coming online, an unknown order)."""
    customer = _customer_of(order_ids[0])
    couriers = [UserFactory.create().id for _ in range(3)]
    now = timezone.now()

    def status(order_id: uuid.UUID, to: str, reason: str | None = None) -> OrderStatusChanged:
        return OrderStatusChanged(
            order_id=order_id,
            customer_id=customer,
            status=to,
            previous_status=OrderStatus.PENDING,
            status_version=2,
            occurred_at=now,
            reason=reason,
        )

    kinds = [
        lambda o: status(o, OrderStatus.CONFIRMED),
        lambda o: status(o, OrderStatus.CANCELLED, OUT_OF_STOCK),
        lambda o: status(o, OrderStatus.CANCELLED, "  changed my mind  "),
        lambda o: status(o, OrderStatus.CANCELLED),
        lambda o: status(o, OrderStatus.OUT_FOR_DELIVERY),
        lambda o: status(o, OrderStatus.DELIVERED),
        lambda o: status(o, OrderStatus.PICKING),  # no message
        lambda o: DeliveryAssigned(delivery_id=uuid.uuid4(), order_id=o, courier_id=couriers[2]),
        lambda o: CourierAvailable(courier_id=couriers[0], reason="released", order_id=o),
        lambda o: CourierAvailable(courier_id=couriers[1], reason="online"),  # no message
    ]
    events: list[EventPayload] = [kinds[i % len(kinds)](o) for i, o in enumerate(order_ids)]
    events.insert(3, status(uuid.uuid4(), OrderStatus.CONFIRMED))  # its order is elsewhere
    return [(Envelope.wrap(e, aggregate_id=uuid.uuid4(), occurred_at=now), e) for e in events]


def _rows() -> list[tuple[Any, ...]]:
    """Every notification, in the order lists and the sender see them (created_at)."""
    return list(Notification.objects.order_by("created_at", "id").values_list(*FIELDS))


def _per_event(pairs: list[Pair]) -> list[tuple[Any, ...]]:
    with transaction.atomic():
        for envelope, event in pairs:
            notify_for_event(envelope=envelope, event=event)
    rows = _rows()
    Notification.objects.all().delete()
    return rows


def _recording(texts: list[str]) -> Any:
    """An execute wrapper that appends each statement's text (its placeholders, not its
    values) to ``texts``."""

    def record(execute: Any, sql: str, *rest: Any) -> Any:
        texts.append(sql)
        return execute(sql, *rest)

    return record


def test_a_batch_writes_the_per_event_rows_in_two_statements_whatever_its_size() -> None:
    insert_texts = set()
    for size in (10, 60):
        # given a batch of notifying events (and some that notify nobody)
        pairs = _events(_orders(size))
        expected = _per_event(pairs)
        assert len(expected) == size * 8 // 10  # 8 of the 10 kinds notify

        # when its notifications are written set-based
        templates: list[str] = []
        with (
            transaction.atomic(),
            CaptureQueriesContext(connection) as queries,
            connection.execute_wrapper(_recording(templates)),
        ):
            written = notify_for_events(pairs)

        # then one read of the order numbers and one insert, whatever the size
        assert len(queries) == 2, [q["sql"] for q in queries]
        assert queries[1]["sql"].startswith("INSERT INTO core_notification")
        assert "ON CONFLICT DO NOTHING" in queries[1]["sql"]
        insert_texts.add(templates[1])
        # and exactly the per-event rows, in the events' order, pending and due now
        assert written == len(expected)
        assert _rows() == expected
        times = list(Notification.objects.order_by("created_at").values_list("created_at"))
        assert len(set(times)) == len(times)  # strictly ordered, as one by one
        assert not Notification.objects.exclude(next_send_at=F("created_at")).exists()
        assert not Notification.objects.filter(next_send_at__gt=timezone.now()).exists()
        Notification.objects.all().delete()
    # and the insert's text is the same for both sizes: psycopg's query cache serves it
    assert len(insert_texts) == 1, insert_texts


def test_a_retried_batch_notifies_nobody_twice() -> None:
    # given a batch whose first half was notified already (a retry after a split, a replay)
    pairs = _events(_orders(20))
    with transaction.atomic():
        for envelope, event in pairs[:10]:
            notify_for_event(envelope=envelope, event=event)
    with transaction.atomic():
        notify_for_events(pairs[:10])
    first_half = _rows()

    # when the whole batch is written, twice
    with transaction.atomic():
        notify_for_events(pairs)
    with transaction.atomic():
        notify_for_events(pairs)

    # then each (event, user, type) once: the first half's rows kept, the second's added
    rows = _rows()
    assert len(rows) == len(set(rows)) == 16
    assert set(first_half) < set(rows)
    Notification.objects.all().delete()
    assert rows == _per_event(pairs)


def test_a_batch_with_nothing_to_say_touches_no_table() -> None:
    pairs = [p for p in _events(_orders(10)) if p[1].order_id is None]  # type: ignore[attr-defined]
    with CaptureQueriesContext(connection) as queries:
        assert notify_for_events(pairs) == 0
    assert len(queries) == 0


def test_the_worker_writes_a_batchs_notifications_with_one_insert() -> None:
    # given the set-based form registered for the three notifying events
    for event_type in ("order.status_changed", "delivery.assigned", "courier.available"):
        [handler] = [
            h for h in registry.for_type(event_type) if h.fn is handlers.write_notifications
        ]
        assert handler.batch is handlers._write_notifications_batch

    # and 40 events on the stream: deliveries and cancellations (no dispatch on the way)
    pairs = [
        p
        for p in _events(_orders(60))
        if not (isinstance(p[1], OrderStatusChanged) and p[1].status == OrderStatus.CONFIRMED)
    ][:40]
    for envelope, _event in pairs:
        get_redis().xadd(
            settings.EVENT_STREAM,
            {
                "event_id": str(envelope.event_id),
                "type": envelope.type,
                "envelope": envelope.to_json(),
            },
        )
    expected = _per_event(pairs)
    worker = make_worker(batch=64)
    worker.ensure_group()

    # when the worker reads them in one batch
    with CaptureQueriesContext(connection) as queries:
        assert worker.run_once() == 40

    # then one insert wrote them all, the per-event rows
    inserts = [q["sql"] for q in queries if q["sql"].startswith("INSERT INTO core_notification ")]
    assert len(inserts) == 1
    assert _rows() == expected
