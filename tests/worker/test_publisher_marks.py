"""The outbox publisher puts each committed event on the stream at once and marks the
outbox rows of an interval (``_Publisher.MARK_EVERY_S``) in one statement: one UPDATE per
request's event was an eighth of PostgreSQL's time per order (docs/performance.md, fifth
session)."""

from __future__ import annotations

from typing import Any, cast

import pytest
from django.conf import settings

from lokaly_core.outbox import relay
from lokaly_core.outbox.models import OutboxEvent
from lokaly_core.redis_client import get_redis
from tests.conftest import stream_envelopes, wait_until
from tests.worker.test_commit_publish import _place

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def marks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of every mark statement the publisher runs."""
    sizes: list[int] = []
    mark = relay._mark_published

    def counting(published: Any) -> None:
        sizes.append(len(published))
        mark(published)

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


def _wait_for_events_on_the_stream(count: int) -> None:
    wait_until(lambda: len(stream_envelopes()) == count, timeout=5)


def _stream_ids() -> list[str]:
    entries = cast("list[tuple[bytes, Any]]", get_redis().xrange(settings.EVENT_STREAM))
    return [sid.decode() for sid, _ in entries]
