"""Promise 1: an event is published if and only if its transaction committed."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from typing import Any

import pytest
from django.db import transaction
from django.utils import timezone

from lokaly_core.domain.errors import NotFound
from lokaly_core.domain.model import orders as d
from lokaly_core.domain.services import ItemRequest, PlaceOrder, order_cancel, place_order
from lokaly_core.events import OrderCancelled
from lokaly_core.orders.models import Order
from lokaly_core.orders.uow import DjangoUnitOfWork
from lokaly_core.outbox.models import OutboxEvent
from tests.conftest import stream_envelopes, wait_until
from tests.live import ROOT, live_database_url
from tests.worker.conftest import make_worker, run_until

pytestmark = pytest.mark.django_db(transaction=True)

ADDRESS = d.Address("Keizersgracht 1", "Amsterdam", "1015 CJ", 52.37, 4.89)


def _place(customer: Any, stock: Any) -> d.Order:
    return place_order(
        uow=DjangoUnitOfWork(),
        clock=timezone.now,
        delivery_fee_cents=199,
        command=PlaceOrder(
            customer.id, stock.store_id, [ItemRequest(stock.product_id, 1)], ADDRESS
        ),
    )


def _only_this_order_reaches_the_stream(customer: Any, stock: Any) -> None:
    """Place a good order and wait for its event: the publisher is first in, first out, so
    anything the failed transaction had handed it would be on the stream by then."""
    good = _place(customer, stock)
    wait_until(lambda: stream_envelopes())
    assert [(e.type, e.aggregate_id) for e in stream_envelopes()] == [("order.created", good.id)]
    assert list(OutboxEvent.objects.values_list("aggregate_id", flat=True)) == [good.id]


@pytest.mark.parametrize("publish", ["background", "inline"])
def test_a_unit_of_work_that_records_then_raises_leaves_no_event(
    customer, stocked, settings, publish: str
) -> None:
    settings.OUTBOX_PUBLISH = publish
    stock = stocked(on_hand=5)

    # when a unit of work records an event, flushes it to the outbox, then raises
    def record_then_raise() -> None:
        with DjangoUnitOfWork() as uow:
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
            raise RuntimeError("failed after recording")

    with pytest.raises(RuntimeError, match="after recording"):
        record_then_raise()

    # then neither the outbox nor the stream has it
    assert OutboxEvent.objects.count() == 0
    _only_this_order_reaches_the_stream(customer, stock)


def test_a_service_failing_after_an_event_was_recorded_leaves_no_event(customer, stocked) -> None:
    stock = stocked(on_hand=5)

    # when, in one transaction, an order is placed (order.created recorded) and the next
    # service fails
    placed: list[d.Order] = []

    def place_then_fail() -> None:
        with transaction.atomic():
            placed.append(_place(customer, stock))
            order_cancel(
                uow=DjangoUnitOfWork(),
                clock=timezone.now,
                order_id=uuid.uuid4(),
                actor=d.Actor.CUSTOMER,
                reason="changed my mind",
                customer_id=customer.id,
            )

    with pytest.raises(NotFound):
        place_then_fail()

    # then the order, its event and any publish are gone with the transaction
    assert not Order.objects.filter(pk=placed[0].id).exists()
    assert OutboxEvent.objects.count() == 0
    _only_this_order_reaches_the_stream(customer, stock)


def test_events_of_a_process_killed_between_commit_and_publish_are_swept(
    customer, stocked, settings
) -> None:
    # given a process that placed an order and was SIGKILLed right after the commit
    stock = stocked(on_hand=5)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "lokaly_admin.settings.test",
        "DATABASE_URL": live_database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "EVENT_STREAM": settings.EVENT_STREAM,
        "DEAD_LETTER_STREAM": settings.DEAD_LETTER_STREAM,
    }
    proc = subprocess.run(
        [sys.executable, "-m", "tests.worker.kill_after_commit"]
        + [str(customer.id), str(stock.store_id), str(stock.product_id)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=50,
        check=False,
    )
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    order_id = uuid.UUID(proc.stdout.decode().split()[-1])

    # then the order committed, its event is in the outbox, unpublished, and not on the stream
    assert Order.objects.get(pk=order_id).status == "pending"
    [row] = OutboxEvent.objects.filter(aggregate_id=order_id)
    assert (row.type, row.published_at, row.stream_id) == ("order.created", None, "")
    assert stream_envelopes() == []

    # when a worker does its maintenance (the relay's sweep) and reads the stream
    settings.OUTBOX_SWEEP_AFTER_MS = 0
    worker = make_worker()
    run_until(worker, lambda: Order.objects.get(pk=order_id).status == "confirmed")

    # then the event was published once, by the sweep, and processed
    assert worker.stats.swept >= 1
    row.refresh_from_db()
    assert row.published_at is not None and row.processed_at is not None
    created = [e for e in stream_envelopes() if e.type == "order.created"]
    assert [e.event_id for e in created] == [row.event_id]
