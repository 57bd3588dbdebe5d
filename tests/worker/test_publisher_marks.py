"""The outbox publisher puts each committed event on the stream at once and marks the
outbox rows of an interval (``_Publisher.MARK_EVERY_S``) in one statement: one UPDATE per
request's event was an eighth of PostgreSQL's time per order (docs/performance.md, fifth
session). A row the worker settled before that mark is marked published by the worker,
and the publisher's mark leaves it alone (sixth session)."""

from __future__ import annotations

from typing import Any, cast

import pytest
from django.conf import settings
from django.db import connection

from lokaly_core.outbox import relay
from lokaly_core.outbox.models import OutboxEvent
from lokaly_core.redis_client import get_redis
from tests.conftest import stream_envelopes, wait_until
from tests.worker.conftest import make_worker, run_until
from tests.worker.test_commit_publish import _place

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def marks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of every mark statement the publisher runs (from now: an earlier test's
    publisher marks what it holds at its stop, uncounted)."""
    relay.stop_publisher()
    sizes: list[int] = []
    mark = relay._mark_published

    def counting(published: Any, **kwargs: Any) -> None:
        sizes.append(len(published))
        mark(published, **kwargs)

    monkeypatch.setattr(relay, "_mark_published", counting)
    return sizes


def test_events_go_out_at_once_and_their_rows_are_marked_together(
    customer: Any, stocked: Any, marks: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a publisher whose marks wait longer than this test
    relay.stop_publisher()
    monkeypatch.setattr(relay._Publisher, "MARK_EVERY_S", 60.0)
    stock = stocked(on_hand=50)

    # when 20 orders commit, each waiting for its event on the stream
    for placed in range(1, 21):
        _place(customer, stock)
        _wait_for_events_on_the_stream(placed)

    # then none is marked yet, and at the publisher's stop all 20 are, in one statement
    assert OutboxEvent.objects.filter(published_at__isnull=False).count() == 0
    relay.stop_publisher()
    assert marks == [20]
    assert OutboxEvent.objects.filter(published_at__isnull=True).count() == 0
    stream_ids = {e.event_id: s for e, s in zip(stream_envelopes(), _stream_ids(), strict=True)}
    for row in OutboxEvent.objects.all():
        assert row.stream_id == stream_ids[row.event_id]


def test_a_lone_event_is_marked_within_the_interval(
    customer: Any, stocked: Any, marks: list[int]
) -> None:
    # when one order commits and nothing follows it
    relay.stop_publisher()
    order = _place(customer, stocked(on_hand=5))

    # then its row is marked (by the interval's timer, not by more traffic)
    assert wait_until(
        lambda: OutboxEvent.objects.filter(aggregate_id=order.id, published_at__isnull=False)
        .exists(),
        timeout=5,
    )
    assert marks == [1]


def test_a_row_the_worker_settles_first_is_marked_by_the_worker_alone(
    customer: Any, stocked: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given an order's event on the stream, its row not marked yet (the publisher's marks
    # wait longer than this test)
    relay.stop_publisher()
    monkeypatch.setattr(relay._Publisher, "MARK_EVERY_S", 60.0)
    order = _place(customer, stocked(on_hand=5))
    _wait_for_events_on_the_stream(1)
    [entry_id] = _stream_ids()

    # when a worker processes it
    run_until(
        make_worker(),
        lambda: OutboxEvent.objects.filter(
            aggregate_id=order.id, type="order.created", processed_at__isnull=False
        ).exists(),
    )

    # then the worker marked the row published too, with the stream entry it read
    row = OutboxEvent.objects.get(aggregate_id=order.id, type="order.created")
    assert row.published_at is not None
    assert row.stream_id == entry_id
    version = _row_version(row.event_id)

    # and the publisher's mark (at its stop) leaves the row as it is: no new version
    relay.stop_publisher()
    assert _row_version(row.event_id) == version
    assert OutboxEvent.objects.get(pk=row.event_id).published_at == row.published_at
    # while the events the worker committed meanwhile were marked by it
    assert OutboxEvent.objects.filter(published_at__isnull=True).count() == 0


def _row_version(event_id: Any) -> str:
    """The row version's xmin: a new one for every UPDATE of the row."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT xmin::text FROM core_outboxevent WHERE event_id = %s", [event_id]
        )
        return str(cursor.fetchone()[0])


def _wait_for_events_on_the_stream(count: int) -> None:
    wait_until(lambda: len(stream_envelopes()) == count, timeout=5)


def _stream_ids() -> list[str]:
    entries = cast("list[tuple[bytes, Any]]", get_redis().xrange(settings.EVENT_STREAM))
    return [sid.decode() for sid, _ in entries]
