"""Promise 5: Redis losing its data is repaired. The worker recreates the stream and its
group, and ``events reconcile`` (and the worker, periodically) publishes again what was
published but never processed."""

from __future__ import annotations

import io
import os
import threading
import time
import uuid
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.db.models import Sum
from django.utils import timezone

from lokaly_core.domain.model import orders as d
from lokaly_core.domain.services import ItemRequest, PlaceOrder, place_order
from lokaly_core.events import Envelope, OrderCancelled, PickingCompleted
from lokaly_core.inventory.models import Stock
from lokaly_core.orders.models import Order, OrderLine
from lokaly_core.orders.uow import DjangoUnitOfWork
from lokaly_core.outbox.models import OutboxEvent
from lokaly_core.outbox.relay import envelope_of
from lokaly_core.redis_client import get_redis
from lokaly_worker import maintenance
from lokaly_worker.consumer import StreamWorker
from lokaly_worker.registry import Registry
from tests.conftest import stream_envelopes, wait_until
from tests.worker.conftest import make_worker

pytestmark = pytest.mark.django_db(transaction=True)

# The flush test empties a whole Redis database: one no other test (nor anything else on a
# shared Redis) uses. Override with LOKALY_TEST_FLUSH_REDIS_DB.
FLUSH_DB = int(os.environ.get("LOKALY_TEST_FLUSH_REDIS_DB", "14"))
ADDRESS = d.Address("Keizersgracht 1", "Amsterdam", "1015 CJ", 52.37, 4.89)
FINAL = ("confirmed", "cancelled")


@pytest.fixture
def flushable_redis(settings) -> Any:
    """Point this process (publisher, workers, reconcile) at the database FLUSH_DB."""
    parts = urlsplit(settings.REDIS_URL)
    settings.REDIS_URL = urlunsplit(parts._replace(path=f"/{FLUSH_DB}"))
    client = get_redis()
    client.flushdb()
    yield client
    client.flushdb()


class WorkerThread:
    """A StreamWorker looping in a thread, which can be paused between two turns."""

    def __init__(self, name: str) -> None:
        self.worker: StreamWorker = make_worker(consumer=name)
        self.run = threading.Event()
        self.idle = threading.Event()
        self.done = threading.Event()
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self.run.set()
        self.thread.start()

    def _loop(self) -> None:
        try:
            self.worker.ensure_group()
            while not self.done.is_set():
                if not self.run.is_set():
                    self.idle.set()
                    time.sleep(0.01)
                    continue
                self.idle.clear()
                self.worker.tick()
        except BaseException as exc:  # reported by the test
            self.errors.append(exc)
        finally:
            connection.close()

    def pause(self) -> None:
        self.run.clear()
        assert self.idle.wait(10), "worker did not pause"

    def stop(self) -> None:
        self.done.set()
        self.thread.join(10)


def _place_orders(customer: Any, stock: Any, n: int) -> list[uuid.UUID]:
    command = PlaceOrder(customer.id, stock.store_id, [ItemRequest(stock.product_id, 1)], ADDRESS)
    return [
        place_order(
            uow=DjangoUnitOfWork(), clock=timezone.now, command=command, delivery_fee_cents=199
        ).id
        for _ in range(n)
    ]


def _statuses(order_ids: list[uuid.UUID]) -> list[str]:
    return list(Order.objects.filter(pk__in=order_ids).values_list("status", flat=True))


def _all_final(order_ids: list[uuid.UUID]) -> bool:
    statuses = _statuses(order_ids)
    return len(statuses) == len(order_ids) and all(s in FINAL for s in statuses)


def _unsettled() -> set[uuid.UUID]:
    return set(
        OutboxEvent.objects.filter(
            processed_at__isnull=True, dead_lettered_at__isnull=True
        ).values_list("event_id", flat=True)
    )


def test_orders_whose_events_redis_lost_reach_their_final_state_after_reconcile(
    customer, stocked, flushable_redis
) -> None:
    # given 40 units, two workers, and a first burst of 20 orders fully processed
    stock = stocked(on_hand=40)
    workers = [WorkerThread("flush-w1"), WorkerThread("flush-w2")]
    try:
        first = _place_orders(customer, stock, 20)
        wait_until(lambda: _all_final(first) and not _unsettled(), timeout=20)

        # and 20 more whose order.created is on the stream, unread (the workers are busy)
        for w in workers:
            w.pause()
        lost = _place_orders(customer, stock, 20)
        wait_until(
            lambda: (
                not OutboxEvent.objects.filter(
                    aggregate_id__in=lost, published_at__isnull=True
                ).exists()
            )
        )

        # when Redis loses everything in the middle of the burst
        flushable_redis.flushdb()
        for w in workers:
            w.run.set()
        last = _place_orders(customer, stock, 20)

        # then the workers recreate the stream and group and go on with new events,
        wait_until(lambda: _all_final(last), timeout=20)
        lost_events = set(
            OutboxEvent.objects.filter(aggregate_id__in=lost).values_list("event_id", flat=True)
        )
        wait_until(lambda: _unsettled() == lost_events, timeout=20)
        # but the lost orders stay pending: nothing on the stream mentions them any more
        assert _statuses(lost) == ["pending"] * 20

        # when an operator looks first, then reconciles
        dry = io.StringIO()
        call_command("events", "reconcile", "--older-than", "0", "--dry-run", stdout=dry)
        assert "20 would publish again (dry run)" in dry.getvalue()
        assert _statuses(lost) == ["pending"] * 20
        out = io.StringIO()
        call_command("events", "reconcile", "--older-than", "0", stdout=out)
        assert "0 still on the stream, 20 published again." in out.getvalue()

        # then every order reaches its final state; the 40 units went to the first 40
        wait_until(lambda: _all_final(lost) and not _unsettled(), timeout=20)
    finally:
        for w in workers:
            w.stop()
    assert [e for w in workers for e in w.errors] == []
    assert sorted(_statuses(first + last)) == ["confirmed"] * 40
    assert _statuses(lost) == ["cancelled"] * 20
    confirmed_units = OrderLine.objects.filter(order__status="confirmed").aggregate(
        n=Sum("quantity")
    )["n"]
    assert Stock.objects.get(pk=stock.pk).reserved == confirmed_units == 40

    # and a second reconcile finds nothing left to do
    again = io.StringIO()
    call_command("events", "reconcile", "--older-than", "0", stdout=again)
    assert "0 published again." in again.getvalue()


def _outbox_row(*, published_ago_s: float | None, stream_id: str = "", **fields: Any) -> Any:
    event = OrderCancelled(
        order_id=uuid.uuid4(), reason="x", cancelled_by="admin", previous_status="pending"
    )
    envelope = Envelope.wrap(event, aggregate_id=event.order_id, occurred_at=timezone.now())
    published = (
        None if published_ago_s is None else timezone.now() - timedelta(seconds=published_ago_s)
    )
    return OutboxEvent.objects.create(
        event_id=envelope.event_id,
        type=envelope.type,
        schema_version=envelope.schema_version,
        occurred_at=envelope.occurred_at,
        aggregate_id=envelope.aggregate_id,
        payload=envelope.payload,
        published_at=published,
        stream_id=stream_id,
        **fields,
    )


def test_worker_reconcile_publishes_only_old_unsettled_events_gone_from_the_stream(
    redis_client, settings
) -> None:
    settings.EVENT_RECONCILE_AFTER_S = 300
    still_there = _outbox_row(published_ago_s=600)
    entry = redis_client.xadd(
        settings.EVENT_STREAM,
        {
            "event_id": str(still_there.event_id),
            "type": still_there.type,
            "envelope": envelope_of(still_there).to_json(),
        },
    )
    OutboxEvent.objects.filter(pk=still_there.pk).update(stream_id=entry.decode())
    gone = _outbox_row(published_ago_s=600, stream_id="1-0")
    now = timezone.now()
    untouched = [
        _outbox_row(published_ago_s=60, stream_id="1-1"),  # too recent
        _outbox_row(published_ago_s=600, stream_id="1-2", processed_at=now),
        _outbox_row(published_ago_s=600, stream_id="1-3", dead_lettered_at=now),
        _outbox_row(published_ago_s=None),  # unpublished: the sweep's job
    ]
    before = {r.pk: r.published_at for r in [still_there, *untouched]}

    assert maintenance.reconcile_lost_events() == 1

    assert [e.event_id for e in stream_envelopes()] == [still_there.event_id, gone.event_id]
    gone.refresh_from_db()
    assert gone.published_at > now and gone.stream_id != "1-0"
    assert dict(OutboxEvent.objects.filter(pk__in=before).values_list("pk", "published_at")) == (
        before
    )
    assert maintenance.reconcile_lost_events() == 0


def test_dead_letters_survive_redis_losing_the_streams(redis_client) -> None:
    # given a worker whose stream, group and dead-letter stream vanished
    reg = Registry()

    @reg.handles(PickingCompleted)
    def always_fails(envelope, event) -> None:
        raise RuntimeError("poison")

    worker = make_worker(reg, max_attempts=1)
    worker.ensure_group()
    redis_client.xadd(settings.DEAD_LETTER_STREAM, {"old": "1"})
    redis_client.delete(settings.EVENT_STREAM, settings.DEAD_LETTER_STREAM)
    worker.tick()  # maintenance, then a read: both meet NOGROUP and recreate the group

    # when a poison event arrives
    event = PickingCompleted(order_id=uuid.uuid4(), store_id=uuid.uuid4())
    envelope = Envelope.wrap(event, aggregate_id=event.order_id, occurred_at=timezone.now())
    redis_client.xadd(
        settings.EVENT_STREAM,
        {"event_id": str(envelope.event_id), "type": envelope.type, "envelope": envelope.to_json()},
    )
    deadline = time.monotonic() + 10  # no run_until: it would create the group itself
    while not redis_client.xlen(settings.DEAD_LETTER_STREAM):
        assert time.monotonic() < deadline, "the poison event was not dead-lettered"
        worker.tick()

    # then it is dead-lettered on a recreated dead-letter stream, and acked
    [(_id, fields)] = redis_client.xrange(settings.DEAD_LETTER_STREAM)
    assert fields[b"event_id"].decode() == str(envelope.event_id)
    assert (
        redis_client.xpending(settings.EVENT_STREAM, settings.EVENT_CONSUMER_GROUP)["pending"] == 0
    )
