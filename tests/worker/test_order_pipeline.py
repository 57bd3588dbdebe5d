"""order.created -> stock reserved -> confirmed, through the real outbox, stream and worker."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from lokaly_core.domain.model import orders as d
from lokaly_core.domain.model.orders import OrderStatus
from lokaly_core.domain.services import ItemRequest, PlaceOrder, order_reserve_stock, place_order
from lokaly_core.events import Envelope, OrderCancelled
from lokaly_core.inventory.models import Stock
from lokaly_core.orders.models import Order
from lokaly_core.orders.uow import DjangoUnitOfWork
from lokaly_core.outbox import relay
from lokaly_core.outbox.models import OutboxEvent, ProcessedEvent
from tests.conftest import order_body, stream_envelopes, wait_until
from tests.worker.conftest import run_until

pytestmark = pytest.mark.django_db(transaction=True)


def _status(order_id: str) -> str:
    return Order.objects.values_list("status", flat=True).get(pk=order_id)


def test_order_created_is_confirmed_with_stock_reserved(customer_client, stocked, worker) -> None:
    # given an order for 3 of 10 units
    stock = stocked(on_hand=10)
    response = customer_client.post(
        "/api/orders", order_body(stock.store_id, (stock.product_id, 3))
    )
    assert response.status_code == 201
    order_id = response.json()["id"]

    # when the worker runs
    run_until(worker, lambda: _status(order_id) == "confirmed")

    # then stock is held, the history has both versions, and the events are on the stream
    stock.refresh_from_db()
    assert (stock.on_hand, stock.reserved, stock.available) == (10, 3, 7)
    order = Order.objects.get(pk=order_id)
    assert order.status_version == 2 and order.stock_state == "reserved"
    def published_types() -> list[str]:
        return [e.type for e in stream_envelopes() if str(e.aggregate_id) == order_id]

    wait_until(lambda: len(published_types()) == 3)
    assert published_types() == ["order.created", "inventory.reserved", "order.status_changed"]
    wait_until(lambda: not OutboxEvent.objects.filter(published_at__isnull=True).exists())


def test_order_without_enough_stock_is_cancelled_out_of_stock(
    customer_client, stocked, worker
) -> None:
    plenty, scarce = stocked(on_hand=10), stocked(on_hand=1)
    body = order_body(plenty.store_id, (plenty.product_id, 2), (scarce.product_id, 2))
    order_id = customer_client.post("/api/orders", body).json()["id"]

    run_until(worker, lambda: _status(order_id) == "cancelled")

    order = Order.objects.get(pk=order_id)
    assert order.cancel_reason == "out_of_stock"
    assert list(Stock.objects.order_by("id").values_list("reserved", flat=True)) == [0, 0]
    wait_until(lambda: len([e for e in stream_envelopes() if str(e.aggregate_id) == order_id]) == 3)
    types = [e.type for e in stream_envelopes() if str(e.aggregate_id) == order_id]
    assert types == ["order.created", "order.status_changed", "order.cancelled"]


def test_event_delivered_twice_has_its_effects_once(
    customer_client, stocked, worker, redis_client
) -> None:
    stock = stocked(on_hand=10)
    order_id = customer_client.post(
        "/api/orders", order_body(stock.store_id, (stock.product_id, 4))
    ).json()["id"]
    [created] = wait_until(lambda: [e for e in stream_envelopes() if e.type == "order.created"])
    # the same event arrives again (a relay retry, a replay)
    redis_client.xadd(
        settings.EVENT_STREAM,
        {"event_id": str(created.event_id), "type": created.type, "envelope": created.to_json()},
    )

    # order.created twice, then inventory.reserved and order.status_changed
    run_until(worker, lambda: worker.stats.processed == 4)

    stock.refresh_from_db()
    assert stock.reserved == 4
    assert ProcessedEvent.objects.filter(event_id=created.event_id).count() == 1
    assert _status(order_id) == "confirmed"
    assert Order.objects.get(pk=order_id).status_version == 2


def test_committed_but_unpublished_events_are_swept_onto_the_stream(customer, stocked) -> None:
    # given a committed order whose publish never happened (the process died after commit)
    stock = stocked(on_hand=5)
    event_id = uuid.uuid4()
    OutboxEvent.objects.create(
        event_id=event_id,
        type="order.cancelled",
        schema_version=1,
        occurred_at=timezone.now(),
        aggregate_id=uuid.uuid4(),
        payload={
            "order_id": str(uuid.uuid4()),
            "reason": "x",
            "cancelled_by": "admin",
            "previous_status": "pending",
        },
    )
    assert stream_envelopes() == []
    del stock

    # when the relay sweeps
    published = relay.sweep(older_than_ms=0)

    # then it is on the stream exactly once and marked published
    assert published == 1
    assert [e.event_id for e in stream_envelopes()] == [event_id]
    assert OutboxEvent.objects.get(pk=event_id).published_at is not None
    assert relay.sweep(older_than_ms=0) == 0


def test_failed_transaction_leaves_no_event_anywhere(customer, stocked) -> None:
    stock = stocked(on_hand=5)

    def record_then_fail() -> None:
        with transaction.atomic():
            uow = DjangoUnitOfWork()
            with uow:
                uow.events.record(
                    OrderCancelled(
                        order_id=uuid.uuid4(),
                        reason="x",
                        cancelled_by="admin",
                        previous_status="pending",
                    ),
                    aggregate_id=uuid.uuid4(),
                    occurred_at=timezone.now(),
                )
                uow.commit()
            raise RuntimeError("boom after the unit of work, inside the outer transaction")

    with pytest.raises(RuntimeError, match="boom"):
        record_then_fail()

    assert OutboxEvent.objects.count() == 0
    assert stream_envelopes() == []
    assert Stock.objects.get(pk=stock.pk).reserved == 0


def test_fifty_orders_racing_for_ten_units_confirm_exactly_ten(customer, stocked) -> None:
    # given 10 units and 50 pending orders of 1 unit each
    stock = stocked(on_hand=10)
    address = d.Address("a", "b", "c", 52.0, 4.0)
    order_ids = [
        place_order(
            uow=DjangoUnitOfWork(),
            clock=timezone.now,
            delivery_fee_cents=199,
            command=PlaceOrder(
                customer.id, stock.store_id, [ItemRequest(stock.product_id, 1)], address
            ),
        ).id
        for _ in range(50)
    ]

    # when 50 threads reserve at once, each on its own connection
    barrier = threading.Barrier(50)
    errors: list[BaseException] = []

    def reserve(order_id: Any) -> None:
        try:
            barrier.wait()
            order_reserve_stock(uow=DjangoUnitOfWork(), clock=timezone.now, order_id=order_id)
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=reserve, args=(oid,)) for oid in order_ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    # then exactly ten are confirmed, forty cancelled out of stock, and no unit is oversold
    assert errors == []
    statuses = list(Order.objects.filter(pk__in=order_ids).values_list("status", "cancel_reason"))
    assert statuses.count((OrderStatus.CONFIRMED, None)) == 10
    assert statuses.count((OrderStatus.CANCELLED, "out_of_stock")) == 40
    stock.refresh_from_db()
    assert (stock.on_hand, stock.reserved, stock.available) == (10, 10, 0)


def test_stream_entries_carry_the_full_envelope(customer_client, stocked, redis_client) -> None:
    stock = stocked(on_hand=5)
    customer_client.post("/api/orders", order_body(stock.store_id, (stock.product_id, 1)))

    [(entry_id, fields)] = wait_until(lambda: redis_client.xrange(settings.EVENT_STREAM))
    wait_until(lambda: OutboxEvent.objects.get().stream_id)

    envelope = json.loads(fields[b"envelope"])
    assert fields[b"type"] == b"order.created"
    assert fields[b"event_id"].decode() == envelope["event_id"]
    assert Envelope.from_dict(envelope).parse().lines[0].quantity == 1  # type: ignore[attr-defined]
    assert OutboxEvent.objects.get().stream_id == entry_id.decode()


def test_worker_prunes_idempotency_keys_past_their_ttl(customer, worker, settings) -> None:
    # given a key kept 49 hours and one kept 47 hours, with a 48-hour TTL
    from lokaly_core.orders.models import IdempotencyKey

    settings.IDEMPOTENCY_KEY_TTL_HOURS = 48
    old = IdempotencyKey.objects.create(customer=customer, key="old", request_hash="x")
    young = IdempotencyKey.objects.create(customer=customer, key="young", request_hash="y")
    IdempotencyKey.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(hours=49))
    IdempotencyKey.objects.filter(pk=young.pk).update(
        created_at=timezone.now() - timedelta(hours=47)
    )

    # when the worker does its maintenance
    worker.tick()

    # then only the expired key is gone
    assert list(IdempotencyKey.objects.values_list("key", flat=True)) == ["young"]
