"""Failing events are retried with backoff, then dead-lettered; they never block the rest."""

from __future__ import annotations

import time
import uuid

import pytest
from django.conf import settings
from django.utils import timezone

from lokaly_core.domain.backoff import backoff_ms
from lokaly_core.events import Envelope, PickingCompleted, PickingStarted
from lokaly_core.outbox.models import ProcessedEvent
from lokaly_worker.registry import Registry
from tests.worker.conftest import make_worker, run_until

pytestmark = pytest.mark.django_db(transaction=True)


def _publish(redis_client, event) -> Envelope:
    envelope = Envelope.wrap(event, aggregate_id=event.order_id, occurred_at=timezone.now())
    redis_client.xadd(
        settings.EVENT_STREAM,
        {"event_id": str(envelope.event_id), "type": envelope.type, "envelope": envelope.to_json()},
    )
    return envelope


def _dead_letters(redis_client) -> list[dict[str, str]]:
    return [
        {k.decode(): v.decode() for k, v in fields.items()}
        for _id, fields in redis_client.xrange(settings.DEAD_LETTER_STREAM)
    ]


def test_failing_event_is_retried_with_backoff_then_dead_lettered(redis_client) -> None:
    # given a handler that always fails, 3 attempts, backoff 200..800 ms
    attempts: list[float] = []
    reg = Registry()

    @reg.handles(PickingStarted)
    def explode(envelope, event) -> None:
        attempts.append(time.monotonic())
        raise ValueError("the printer is on fire")

    worker = make_worker(reg, max_attempts=3, retry_base_ms=200, retry_max_ms=800)
    envelope = _publish(redis_client, PickingStarted(order_id=uuid.uuid4(), store_id=uuid.uuid4()))

    # when the worker runs until the event is dead-lettered
    run_until(worker, lambda: _dead_letters(redis_client))

    # then it was tried 3 times with growing gaps, and it sits in the dead-letter stream
    [dead] = _dead_letters(redis_client)
    assert len(attempts) == 3
    assert dead["event_id"] == str(envelope.event_id)
    assert dead["attempts"] == "3"
    assert dead["type"] == "picking.started"
    assert "ValueError: the printer is on fire" in dead["error"]
    assert Envelope.from_json(dead["envelope"]) == envelope
    gaps_ms = [(b - a) * 1000 for a, b in zip(attempts, attempts[1:], strict=False)]
    assert gaps_ms[0] >= 100 - 10  # at least half of 200 ms (jitter keeps 50-100 %)
    assert gaps_ms[1] >= 200 - 10  # at least half of 400 ms
    assert (
        redis_client.xpending(settings.EVENT_STREAM, settings.EVENT_CONSUMER_GROUP)["pending"] == 0
    )
    # the failed attempts left no dedup marker behind (they rolled back with the handler)
    assert ProcessedEvent.objects.count() == 0


def test_poison_event_does_not_block_the_events_behind_it(redis_client) -> None:
    done: list[str] = []
    reg = Registry()

    @reg.handles(PickingStarted)
    def explode(envelope, event) -> None:
        raise RuntimeError("poison")

    @reg.handles(PickingCompleted)
    def record(envelope, event) -> None:
        done.append(str(event.order_id))

    worker = make_worker(reg, max_attempts=5, retry_base_ms=5000, retry_max_ms=5000)
    _publish(redis_client, PickingStarted(order_id=uuid.uuid4(), store_id=uuid.uuid4()))
    good = _publish(redis_client, PickingCompleted(order_id=uuid.uuid4(), store_id=uuid.uuid4()))

    run_until(worker, lambda: done, timeout=5)

    assert done == [str(good.aggregate_id)]
    assert _dead_letters(redis_client) == []  # the poison is still waiting for its backoff


def test_a_handler_that_recovers_is_processed_once(redis_client) -> None:
    calls: list[int] = []
    reg = Registry()

    @reg.handles(PickingStarted)
    def flaky(envelope, event) -> None:
        calls.append(1)
        if len(calls) < 2:
            raise ConnectionError("blip")
        ProcessedEvent.objects.create(event_id=uuid.uuid4(), handler="side-effect")

    worker = make_worker(reg, max_attempts=5, retry_base_ms=100, retry_max_ms=100)
    envelope = _publish(redis_client, PickingStarted(order_id=uuid.uuid4(), store_id=uuid.uuid4()))

    run_until(worker, lambda: worker.stats.processed == 1)

    assert len(calls) == 2
    assert ProcessedEvent.objects.filter(handler="side-effect").count() == 1
    assert ProcessedEvent.objects.filter(event_id=envelope.event_id).count() == 1
    assert _dead_letters(redis_client) == []


def test_unreadable_entry_goes_straight_to_dead_letters(redis_client) -> None:
    redis_client.xadd(
        settings.EVENT_STREAM, {"event_id": "?", "type": "?", "envelope": "{not json"}
    )
    worker = make_worker()

    run_until(worker, lambda: _dead_letters(redis_client))

    [dead] = _dead_letters(redis_client)
    assert dead["attempts"] == "1"
    assert "unreadable envelope" in dead["error"]


def test_worker_recreates_a_vanished_stream_and_group(redis_client) -> None:
    done: list[str] = []
    reg = Registry()

    @reg.handles(PickingCompleted)
    def record(envelope, event) -> None:
        done.append(str(event.order_id))

    worker = make_worker(reg)
    worker.ensure_group()
    redis_client.delete(settings.EVENT_STREAM)  # Redis lost its data

    worker.tick()  # notices NOGROUP and recreates the group
    sent = _publish(redis_client, PickingCompleted(order_id=uuid.uuid4(), store_id=uuid.uuid4()))
    run_until(worker, lambda: done)

    assert done == [str(sent.aggregate_id)]


@pytest.mark.parametrize("attempt", [1, 2, 3, 4, 10, 30])
def test_backoff_grows_exponentially_within_jitter_bounds(attempt: int) -> None:
    ceiling = min(500 * 2 ** (attempt - 1), 30_000)
    for entry in ("1-0", "1700000000000-3", "42-7"):
        value = backoff_ms(attempt, entry, base_ms=500, max_ms=30_000)
        assert ceiling // 2 <= value <= ceiling


def test_order_created_for_an_order_this_database_lacks_is_not_acked_silently(
    redis_client,
) -> None:
    # given an order.created whose order is not in this database (a misrouted worker)
    from lokaly_core.events import OrderCreated, StockLine

    missing = uuid.uuid4()
    _publish(
        redis_client,
        OrderCreated(
            order_id=missing,
            number="LK-999999",
            customer_id=uuid.uuid4(),
            store_id=uuid.uuid4(),
            lines=(StockLine(uuid.uuid4(), 1),),
            total_cents=100,
            currency="EUR",
        ),
    )
    worker = make_worker(max_attempts=2, retry_base_ms=50, retry_max_ms=50)

    # when the worker has tried it all it may
    run_until(worker, lambda: _dead_letters(redis_client))

    # then it is a dead letter saying what to check, not an ack that loses it
    [dead] = _dead_letters(redis_client)
    assert dead["attempts"] == "2"
    assert f"order {missing} is not in this worker's database" in dead["error"]


def test_a_handler_narrowed_with_when_skips_other_events_without_a_marker(redis_client) -> None:
    # given a transactional handler that only wants pickings of one store
    store = uuid.uuid4()
    seen: list[uuid.UUID] = []
    reg = Registry()

    @reg.handles(PickingStarted, when=lambda event: event.store_id == store)
    def record(envelope, event) -> None:
        seen.append(event.order_id)

    worker = make_worker(reg)
    wanted = _publish(redis_client, PickingStarted(order_id=uuid.uuid4(), store_id=store))
    other = _publish(redis_client, PickingStarted(order_id=uuid.uuid4(), store_id=uuid.uuid4()))

    # when both are processed (and acked)
    run_until(
        worker,
        lambda: (
            redis_client.xpending(settings.EVENT_STREAM, settings.EVENT_CONSUMER_GROUP)["pending"]
            == 0
            and redis_client.xlen(settings.EVENT_STREAM) == 2
            and len(worker.stats.by_type) == 1
            and worker.stats.processed == 2
        ),
    )

    # then only the wanted one ran, and only it has a dedup marker
    assert seen == [uuid.UUID(wanted.payload["order_id"])]
    markers = set(ProcessedEvent.objects.values_list("event_id", flat=True))
    assert wanted.event_id in markers
    assert other.event_id not in markers
