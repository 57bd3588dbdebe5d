"""Retries with backoff per event type, counted from Redis' delivery count (so a crash
counts), then dead letters: with a handler that raises and one that kills its process."""

from __future__ import annotations

import functools
import json
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.utils import timezone

from lokaly_core.domain.backoff import backoff_ms
from lokaly_core.events import Envelope, PickingCompleted, PickingStarted
from lokaly_worker.registry import Registry
from lokaly_worker.retry import STOPPED_MID_HANDLER
from tests.conftest import wait_until
from tests.live import stop
from tests.worker.conftest import make_worker, run_until
from tests.worker.faults import start_worker_process, worker_env

pytestmark = pytest.mark.django_db(transaction=True)

# Between two attempts of a worker that keeps running: the backoff, plus up to one
# maintenance turn and one blocking read of make_worker (50 ms each), plus scheduling.
LOOP_SLACK_MS = 250
# Between two attempts of a worker that is killed and started again: the backoff, or the
# start of a new Python process with Django when that takes longer.
RESTART_SLACK_MS = 6_000


def _publish(redis_client, event) -> tuple[str, Envelope]:
    envelope = Envelope.wrap(event, aggregate_id=event.order_id, occurred_at=timezone.now())
    entry_id = redis_client.xadd(
        settings.EVENT_STREAM,
        {"event_id": str(envelope.event_id), "type": envelope.type, "envelope": envelope.to_json()},
    )
    return entry_id.decode(), envelope


def _exited_or_dead_lettered(proc: subprocess.Popen[bytes], redis_client: Any) -> bool:
    return proc.poll() is not None or bool(_dead_letters(redis_client))


def _dead_letters(redis_client) -> list[dict[str, str]]:
    return [
        {k.decode(): v.decode() for k, v in fields.items()}
        for _id, fields in redis_client.xrange(settings.DEAD_LETTER_STREAM)
    ]


def _pending(redis_client) -> int:
    return redis_client.xpending(settings.EVENT_STREAM, settings.EVENT_CONSUMER_GROUP)["pending"]


def _assert_gaps_within_backoff(
    times: list[float], entry_id: str, *, base_ms: int, max_ms: int, slack_ms: int
) -> None:
    """Gap n (between attempts n and n+1) is at least half the backoff ceiling after n
    attempts (jitter keeps 50-100 % of it), at least the entry's own jittered backoff, and
    at most the ceiling plus ``slack_ms``."""
    for n, (before, after) in enumerate(zip(times, times[1:], strict=False), start=1):
        gap_ms = (after - before) * 1000
        ceiling = min(base_ms * 2 ** (n - 1), max_ms)
        jittered = backoff_ms(n, entry_id, base_ms=base_ms, max_ms=max_ms)
        floor = max(ceiling // 2, jittered) - 20  # 20 ms: timestamps taken in the handler
        assert floor <= gap_ms <= ceiling + slack_ms, (n, gap_ms, jittered, ceiling)


def test_retry_policy_per_event_type_bounds_attempts_and_backoff(redis_client, settings) -> None:
    # given 2 attempts for every type but picking.started: 4, backoff 200..600 ms
    settings.EVENT_MAX_ATTEMPTS = 2
    settings.EVENT_RETRY_BASE_MS = 100
    settings.EVENT_RETRY_MAX_MS = 100
    settings.EVENT_RETRY_POLICIES = {
        PickingStarted.TYPE: {"max_attempts": 4, "base_ms": 200, "max_ms": 600}
    }
    attempts: dict[str, list[float]] = {PickingStarted.TYPE: [], PickingCompleted.TYPE: []}
    reg = Registry()

    @reg.handles(PickingStarted, PickingCompleted)
    def explode(envelope, event) -> None:
        attempts[envelope.type].append(time.monotonic())
        raise ValueError("the printer is on fire")

    worker = make_worker(reg)
    started_id, started = _publish(
        redis_client, PickingStarted(order_id=uuid.uuid4(), store_id=uuid.uuid4())
    )
    _publish(redis_client, PickingCompleted(order_id=uuid.uuid4(), store_id=uuid.uuid4()))

    # when the worker runs until both are dead letters
    run_until(worker, lambda: len(_dead_letters(redis_client)) == 2)

    # then picking.started had its 4 attempts, picking.completed the global 2
    dead = {d["type"]: d for d in _dead_letters(redis_client)}
    assert len(attempts[PickingStarted.TYPE]) == 4
    assert len(attempts[PickingCompleted.TYPE]) == 2
    assert dead[PickingStarted.TYPE]["attempts"] == "4"
    assert dead[PickingCompleted.TYPE]["attempts"] == "2"
    assert dead[PickingStarted.TYPE]["error"] == "ValueError: the printer is on fire"
    assert Envelope.from_json(dead[PickingStarted.TYPE]["envelope"]) == started
    assert dead[PickingStarted.TYPE]["failed_at"]
    _assert_gaps_within_backoff(
        attempts[PickingStarted.TYPE], started_id, base_ms=200, max_ms=600, slack_ms=LOOP_SLACK_MS
    )
    assert _pending(redis_client) == 0


def test_poison_event_does_not_delay_the_events_behind_it(redis_client, settings) -> None:
    settings.EVENT_RETRY_POLICIES = {
        PickingStarted.TYPE: {"max_attempts": 5, "base_ms": 10_000, "max_ms": 10_000}
    }
    done: list[float] = []
    reg = Registry()

    @reg.handles(PickingStarted)
    def poison(envelope, event) -> None:
        raise RuntimeError("poison")

    @reg.handles(PickingCompleted)
    def record(envelope, event) -> None:
        done.append(time.monotonic())

    worker = make_worker(reg)
    _publish(redis_client, PickingStarted(order_id=uuid.uuid4(), store_id=uuid.uuid4()))
    for _ in range(20):
        _publish(redis_client, PickingCompleted(order_id=uuid.uuid4(), store_id=uuid.uuid4()))
    started = time.monotonic()

    run_until(worker, lambda: len(done) == 20, timeout=5)

    # all 20 within a second, while the poison waits for its 10 s backoff
    assert done[-1] - started < 1.0
    assert _dead_letters(redis_client) == []
    assert _pending(redis_client) == 1


def test_handler_that_kills_its_process_is_dead_lettered_after_its_attempts(
    redis_client,
) -> None:
    # given a worker process whose picking.started handler SIGKILLs the process: 3 attempts,
    # backoff 3 s doubling (1.5-3 s, then 3-6 s: longer than a restart, so skipping it shows)
    record_key = f"{settings.EVENT_STREAM}:attempts:{uuid.uuid4()}"
    policy = {"max_attempts": 3, "base_ms": 3000, "max_ms": 8000}
    env = worker_env(
        EVENT_RETRY_POLICIES=json.dumps({PickingStarted.TYPE: policy}),
        EVENT_CLAIM_IDLE_MS="60000",
        FAULT_RECORD_KEY=record_key,
    )
    entry_id, envelope = _publish(
        redis_client, PickingStarted(order_id=uuid.uuid4(), store_id=uuid.uuid4())
    )
    logs: dict[str, Path] = {}
    exits: list[int] = []
    deadline = time.monotonic() + 50

    # when it is started again (same consumer name) each time it dies
    while not _dead_letters(redis_client):
        assert time.monotonic() < deadline, {n: p.read_text()[-3000:] for n, p in logs.items()}
        proc = start_worker_process("crash", "crasher", env, logs)
        try:
            wait_until(functools.partial(_exited_or_dead_lettered, proc, redis_client), timeout=30)
        finally:
            if proc.poll() is None:
                stop(proc)
            exits.append(proc.returncode)

    # then it ran 3 times, each run killed, with backoff between runs; the 4th process
    # dead-lettered it without running it, and stopped cleanly on SIGTERM
    times = [float(t) for t in redis_client.lrange(record_key, 0, -1)]
    redis_client.delete(record_key)
    assert exits == [-signal.SIGKILL] * 3 + [0], logs
    assert len(times) == 3
    _assert_gaps_within_backoff(times, entry_id, **_backoff(policy), slack_ms=RESTART_SLACK_MS)
    [dead] = _dead_letters(redis_client)
    assert dead["event_id"] == str(envelope.event_id)
    assert dead["attempts"] == "3"
    assert dead["error"] == STOPPED_MID_HANDLER
    assert _pending(redis_client) == 0


def _backoff(policy: dict[str, int]) -> dict[str, int]:
    return {"base_ms": policy["base_ms"], "max_ms": policy["max_ms"]}
