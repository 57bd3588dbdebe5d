"""The worker owns the handler transaction: a handler whose service finds nothing to do
never rolls back the event's other effects (docs/reliability.md, "Batched worker")."""

from __future__ import annotations

import uuid

import pytest
from django.conf import settings

from lokaly_core.events import Envelope, OrderCreated
from lokaly_core.orders.models import Order
from lokaly_core.outbox.models import ProcessedEvent
from lokaly_worker import handlers
from lokaly_worker.registry import Registry
from tests.conftest import order_body, stream_envelopes, wait_until
from tests.worker.conftest import make_worker, run_until

pytestmark = pytest.mark.django_db(transaction=True)


def _second_effect(envelope: Envelope, event: OrderCreated) -> None:
    ProcessedEvent.objects.create(event_id=uuid.uuid4(), handler=f"second:{envelope.event_id}")


def test_first_handler_with_nothing_to_do_keeps_the_second_effect_and_both_markers(
    customer_client, stocked, redis_client
) -> None:
    # given an order the customer cancelled before the worker saw its order.created, and
    # two transactional handlers of order.created: the reservation (nothing to do for a
    # cancelled order), then a second effect
    stock = stocked(on_hand=10)
    order_id = customer_client.post(
        "/api/orders", order_body(stock.store_id, (stock.product_id, 2))
    ).json()["id"]
    assert customer_client.post(f"/api/orders/{order_id}/cancel").status_code == 200
    [created] = wait_until(lambda: [e for e in stream_envelopes() if e.type == OrderCreated.TYPE])
    reg = Registry()
    reg.handles(OrderCreated)(handlers.reserve_stock)
    reg.handles(OrderCreated)(_second_effect)
    worker = make_worker(reg)

    # when the worker handles the stream
    run_until(worker, lambda: worker.stats.processed >= 1)

    # then the second handler's effect and both dedup markers are committed
    assert ProcessedEvent.objects.filter(handler=f"second:{created.event_id}").count() == 1
    markers = ProcessedEvent.objects.filter(event_id=created.event_id)
    assert sorted(markers.values_list("handler", flat=True)) == [
        "lokaly_worker.handlers.reserve_stock",
        "tests.worker.test_worker_transaction._second_effect",
    ]
    # and the order was left as the customer left it, and the entry is acked
    order = Order.objects.get(pk=order_id)
    assert (order.status, order.cancel_reason) == ("cancelled", order.cancel_reason)
    stock.refresh_from_db()
    assert stock.reserved == 0
    assert redis_client.xpending(settings.EVENT_STREAM, settings.EVENT_CONSUMER_GROUP)[
        "pending"
    ] == 0
