"""The outbox rows' marks never deadlock each other, and the worker survives a lost race.

Every public process's publisher marks the rows it put on the stream (at most
``MARK_EVERY_S`` later, many at once) while the worker marks the same rows processed, so
they update the same rows at about the same time. A 32-customer bench run lost its worker
to a deadlock between the two when both waited for row locks, taking them in two orders
(docs/performance.md, fifth session). The publishers' marks now skip locked rows (never
waiting), the sweep's and ``events reconcile``'s marks lock in event id order rows they
hold already, and the worker runs its marks again when they lose a race all the same."""

from __future__ import annotations

import random
import threading
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from django.db import OperationalError, connection
from django.utils import timezone
from psycopg.errors import DeadlockDetected

from lokaly_core.events import Envelope
from lokaly_core.outbox import relay, settle
from lokaly_core.outbox.models import OutboxEvent
from lokaly_core.outbox.settle import mark_settled
from tests.worker.conftest import make_worker, run_until
from tests.worker.test_commit_publish import _place

pytestmark = pytest.mark.django_db(transaction=True)

ROWS = 300
ROUNDS = 25


def _rows() -> list[Envelope]:
    now = timezone.now()
    rows = [
        OutboxEvent(
            event_id=uuid.uuid4(),
            type="order.created",
            schema_version=1,
            occurred_at=now,
            aggregate_id=uuid.uuid4(),
            payload={},
        )
        for _ in range(ROWS)
    ]
    OutboxEvent.objects.bulk_create(rows)
    return [relay.envelope_of(row) for row in rows]


def _race(*turns: Callable[[random.Random], None]) -> list[BaseException]:
    """Run each turn ROUNDS times, each in a thread of its own, all at once."""
    errors: list[BaseException] = []
    start = threading.Barrier(len(turns))

    def run(turn: Callable[[random.Random], None], seed: int) -> None:
        rng = random.Random(seed)
        try:
            start.wait()
            for _ in range(ROUNDS):
                turn(rng)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(t, n)) for n, t in enumerate(turns)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return errors


def _publisher(
    envelopes: list[Envelope], *, unmarked_only: bool = False
) -> Callable[[random.Random], None]:
    """A publisher's deferred marks (``unmarked_only``), or the sweep's and reconcile's."""

    def turn(rng: random.Random) -> None:
        batch = rng.sample(envelopes, len(envelopes))  # in the order they were committed
        relay._mark_published(
            [(e, f"1-{n}") for n, e in enumerate(batch)], unmarked_only=unmarked_only
        )

    return turn


def test_two_publishers_marking_the_same_rows_do_not_deadlock() -> None:
    envelopes = _rows()

    errors = _race(_publisher(envelopes), _publisher(envelopes))

    assert errors == []
    assert OutboxEvent.objects.filter(published_at__isnull=True).count() == 0


def test_a_publisher_and_the_worker_marking_the_same_rows_do_not_deadlock() -> None:
    envelopes = _rows()
    ids = [str(e.event_id) for e in envelopes]
    entries = [(event_id, f"2-{n}") for n, event_id in enumerate(ids)]

    def worker(rng: random.Random) -> None:
        mark_settled(rng.sample(entries, len(entries)), column="processed_at")
        # unsettle and unpublish them for the next round (the publisher marks them again)
        _unsettle(ids)

    errors = _race(_publisher(envelopes, unmarked_only=True), worker)

    assert errors == []


def _unsettle(ids: list[Any]) -> None:
    table = OutboxEvent._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH locked AS MATERIALIZED (SELECT event_id FROM {table} "  # noqa: S608
            "WHERE event_id = ANY(%s::uuid[]) ORDER BY event_id FOR UPDATE) "
            f"UPDATE {table} AS o SET processed_at = NULL, published_at = NULL FROM locked "
            "WHERE o.event_id = locked.event_id",
            [ids],
        )


def test_the_worker_runs_its_marks_again_when_they_lose_a_race(
    customer: Any, stocked: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a worker whose first settle mark loses a deadlock (as PostgreSQL reports it)
    real = settle.mark_settled
    raised: list[str] = []

    def deadlocked_once(entries: Any, *, column: str) -> None:
        if not raised:
            raised.append(column)
            error = OperationalError("deadlock detected")
            error.__cause__ = DeadlockDetected("deadlock detected")
            raise error
        real(entries, column=column)

    monkeypatch.setattr(settle, "mark_settled", deadlocked_once)
    order = _place(customer, stocked(on_hand=5))
    worker = make_worker()

    # when it processes the order's event, then its loop goes on and the event is settled
    run_until(
        worker,
        lambda: OutboxEvent.objects.filter(aggregate_id=order.id, processed_at__isnull=False)
        .exists(),
    )
    assert raised == ["processed_at"]
