"""SIGTERM to a worker process in the middle of a handler: the handler finishes, its
effect commits, the entry is acked and the process exits 0, within the deadline; past
the deadline the process exits non-zero and the entry stays pending for another worker."""

from __future__ import annotations

import signal
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from lokaly_core.events import Envelope, PickingStarted
from lokaly_core.outbox.models import ProcessedEvent
from lokaly_worker.shutdown import EXIT_DEADLINE
from tests.conftest import wait_until
from tests.live import stop
from tests.worker.faults import start_worker_process, worker_env

pytestmark = pytest.mark.django_db(transaction=True)


def _publish(redis_client) -> Envelope:
    event = PickingStarted(order_id=uuid.uuid4(), store_id=uuid.uuid4())
    envelope = Envelope.wrap(event, aggregate_id=event.order_id, occurred_at=timezone.now())
    redis_client.xadd(
        settings.EVENT_STREAM,
        {"event_id": str(envelope.event_id), "type": envelope.type, "envelope": envelope.to_json()},
    )
    return envelope


def _pending(redis_client) -> int:
    return redis_client.xpending(settings.EVENT_STREAM, settings.EVENT_CONSUMER_GROUP)["pending"]


def _start_slow_worker(redis_client, *, slow_s: float, timeout_s: int):
    record_key = f"{settings.EVENT_STREAM}:attempts:{uuid.uuid4()}"
    env = worker_env(
        FAULT_RECORD_KEY=record_key,
        FAULT_SLOW_S=str(slow_s),
        WORKER_SHUTDOWN_TIMEOUT_S=str(timeout_s),
    )
    logs: dict[str, Path] = {}
    proc = start_worker_process("slow", "slowpoke", env, logs)
    return proc, record_key, logs


def test_sigterm_mid_handler_finishes_commits_and_acks_it(redis_client) -> None:
    # given a worker process in the middle of a 2-second handler, shutdown deadline 10 s
    _publish(redis_client)
    proc, record_key, logs = _start_slow_worker(redis_client, slow_s=2, timeout_s=10)
    try:
        wait_until(
            lambda: redis_client.llen(record_key) == 1 or proc.poll() is not None, timeout=30
        )
        assert proc.poll() is None, logs

        # when it gets SIGTERM
        proc.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        returncode = proc.wait(timeout=15)
        took = time.monotonic() - sent
    finally:
        stop(proc)

    # then it exited 0 within the deadline, the effect is committed once, the entry acked
    log = logs["slowpoke"].read_text()
    assert returncode == 0, log
    assert took < 10
    assert ProcessedEvent.objects.filter(handler="slow-effect").count() == 1
    assert _pending(redis_client) == 0
    assert redis_client.llen(record_key) == 1  # run once, not again
    assert '"msg": "stopping: finishing the events in hand"' in log
    redis_client.delete(record_key)


def test_sigterm_past_the_deadline_exits_non_zero_leaving_the_entry_pending(
    redis_client,
) -> None:
    # given a worker process in a 30-second handler, shutdown deadline 1 s
    _publish(redis_client)
    proc, record_key, logs = _start_slow_worker(redis_client, slow_s=30, timeout_s=1)
    try:
        wait_until(
            lambda: redis_client.llen(record_key) == 1 or proc.poll() is not None, timeout=30
        )
        assert proc.poll() is None, logs

        # when it gets SIGTERM
        proc.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        returncode = proc.wait(timeout=10)
        took = time.monotonic() - sent
    finally:
        stop(proc)

    # then it gave up after the deadline: no effect, the entry still pending on it
    assert returncode == EXIT_DEADLINE, logs["slowpoke"].read_text()
    assert 1 <= took < 5
    assert ProcessedEvent.objects.filter(handler="slow-effect").count() == 0
    [pending] = redis_client.xpending_range(
        settings.EVENT_STREAM, settings.EVENT_CONSUMER_GROUP, min="-", max="+", count=10
    )
    assert pending["consumer"] == b"slowpoke"
    redis_client.delete(record_key)
