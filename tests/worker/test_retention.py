"""Promise 7: bounded memory. Streams are trimmed below what a consumer group still needs;
settled outbox rows and old dedup markers are pruned; nothing still needed goes."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.utils import timezone

from lokaly_core.outbox import retention
from lokaly_core.outbox.models import OutboxEvent, ProcessedEvent
from lokaly_worker import maintenance
from lokaly_worker.periodic import Interval
from tests.live import ROOT

GROUP = "trim-test"


def _ids(client: Any, stream: str) -> list[str]:
    return [entry_id.decode() for entry_id, _ in client.xrange(stream)]


def _read(client: Any, group: str, count: int) -> list[str]:
    [(_stream, entries)] = client.xreadgroup(group, "c1", {settings.EVENT_STREAM: ">"}, count=count)
    return [entry_id.decode() for entry_id, _ in entries]


@pytest.fixture
def ten_entries(redis_client) -> list[str]:
    stream = settings.EVENT_STREAM
    redis_client.xgroup_create(stream, GROUP, id="0", mkstream=True)
    # one pipeline: several entries share a millisecond, so "last-delivered + 1" is tested
    pipe = redis_client.pipeline(transaction=False)
    for n in range(10):
        pipe.xadd(stream, {"n": str(n)})
    return [entry_id.decode() for entry_id in pipe.execute()]


def test_trim_removes_acked_entries_and_keeps_pending_and_unread_ones(
    redis_client, ten_entries
) -> None:
    # given 6 entries read, 5 of them acked and the third still pending, 4 unread
    stream, e = settings.EVENT_STREAM, ten_entries
    assert _read(redis_client, GROUP, 6) == e[:6]
    redis_client.xack(stream, GROUP, *(e[:2] + e[3:6]))

    # when trimmed, only the acked entries before the pending one go
    assert retention.trim_stream() == 2
    assert _ids(redis_client, stream) == e[2:]

    # once the pending one is acked, everything read goes; the unread entries stay
    redis_client.xack(stream, GROUP, e[2])
    assert retention.trim_stream() == 4
    assert _ids(redis_client, stream) == e[6:]
    assert retention.trim_stream() == 0
    assert _read(redis_client, GROUP, 10) == e[6:]


def test_trim_keeps_what_the_slowest_group_has_not_read(redis_client, ten_entries) -> None:
    # given a second group that has read (and acked) only 3 entries
    stream, e = settings.EVENT_STREAM, ten_entries
    redis_client.xgroup_create(stream, "slow", id="0")
    redis_client.xack(stream, GROUP, *_read(redis_client, GROUP, 10))
    redis_client.xack(stream, "slow", *_read(redis_client, "slow", 3))

    assert retention.trim_stream() == 3
    assert _ids(redis_client, stream) == e[3:]


def test_nothing_is_trimmed_without_a_group_or_before_a_group_reads(redis_client) -> None:
    stream = settings.EVENT_STREAM
    for n in range(3):
        redis_client.xadd(stream, {"n": str(n)})
    assert retention.trim_stream() == 0  # no group: nobody says what is done
    redis_client.xgroup_create(stream, GROUP, id="0")
    assert retention.trim_stream() == 0  # a group that read nothing needs everything
    assert redis_client.xlen(stream) == 3
    assert retention.trim_stream("no-such-stream-h7") == 0


def test_dead_letter_stream_is_trimmed_to_about_its_maximum_length(redis_client, settings) -> None:
    settings.DEAD_LETTER_MAXLEN = 10
    pipe = redis_client.pipeline(transaction=False)
    for n in range(250):
        pipe.xadd(settings.DEAD_LETTER_STREAM, {"n": str(n)})
    added = [entry_id.decode() for entry_id in pipe.execute()]

    removed = retention.trim_dead_letters()

    # approximate trimming drops whole nodes of the oldest entries, never the newest 10
    left = _ids(redis_client, settings.DEAD_LETTER_STREAM)
    assert removed > 0 and 10 <= len(left) == 250 - removed
    assert left == added[-len(left) :]


def _outbox_row(*, hours_old: float, **fields: Any) -> OutboxEvent:
    row = OutboxEvent.objects.create(
        event_id=uuid.uuid4(),
        type="order.cancelled",
        schema_version=1,
        occurred_at=timezone.now(),
        aggregate_id=uuid.uuid4(),
        payload={},
        **fields,
    )
    OutboxEvent.objects.filter(pk=row.pk).update(
        created_at=timezone.now() - timedelta(hours=hours_old)
    )
    return row


@pytest.mark.django_db
def test_prune_deletes_only_settled_outbox_rows_past_retention(settings) -> None:
    settings.OUTBOX_RETENTION_HOURS = 168
    now = timezone.now()
    published = {"published_at": now, "stream_id": "1-0"}
    old_processed = [_outbox_row(hours_old=170, processed_at=now, **published) for _ in range(5)]
    old_dead = _outbox_row(hours_old=170, dead_lettered_at=now, **published)
    kept = {
        "young processed": _outbox_row(hours_old=160, processed_at=now, **published),
        "old unpublished": _outbox_row(hours_old=170),
        "old published, unsettled": _outbox_row(hours_old=170, **published),
    }

    # in batches of two, all the way
    assert retention.prune_outbox(batch=2) == 6

    left = set(OutboxEvent.objects.values_list("pk", flat=True))
    assert left == {row.pk for row in kept.values()}
    assert not left & {row.pk for row in [*old_processed, old_dead]}
    assert retention.prune_outbox(batch=2) == 0


@pytest.mark.django_db
def test_prune_deletes_dedup_markers_past_retention(settings) -> None:
    settings.DEDUP_RETENTION_HOURS = 168
    old = [ProcessedEvent.objects.create(event_id=uuid.uuid4(), handler="h") for _ in range(3)]
    young = ProcessedEvent.objects.create(event_id=uuid.uuid4(), handler="h")
    ProcessedEvent.objects.filter(pk__in=[m.pk for m in old]).update(
        processed_at=timezone.now() - timedelta(hours=169)
    )
    ProcessedEvent.objects.filter(pk=young.pk).update(
        processed_at=timezone.now() - timedelta(hours=167)
    )

    assert retention.prune_processed_events(batch=2) == 3

    assert list(ProcessedEvent.objects.values_list("pk", flat=True)) == [young.pk]


@pytest.mark.django_db
def test_worker_maintenance_trims_and_prunes(redis_client, ten_entries, settings) -> None:
    settings.OUTBOX_RETENTION_HOURS = 1
    redis_client.xack(settings.EVENT_STREAM, GROUP, *_read(redis_client, GROUP, 4))
    _outbox_row(hours_old=2, processed_at=timezone.now(), published_at=timezone.now())

    counts = maintenance.trim_and_prune()

    assert counts == {
        "stream_trimmed": 4,
        "dead_letters_trimmed": 0,
        "outbox_pruned": 1,
        "dedup_pruned": 0,
    }


def test_interval_is_due_once_per_period_and_not_at_start() -> None:
    seconds = [0.0]
    interval = Interval(lambda: seconds[0])
    assert interval.due() is False  # the first call only starts the clock
    assert interval.due() is True
    seconds[0] = 3600
    assert interval.due() is True  # the next one is an hour away
    assert interval.due() is False


def test_run_worker_registers_the_maintenance_tasks() -> None:
    # in a fresh process: importing run_worker here would add them to this session's registry
    code = (
        "import django; django.setup(); "
        "import lokaly_worker.management.commands.run_worker; "
        "from lokaly_worker.registry import registry; "
        "print(sorted(t.__name__ for t in registry.periodic_tasks()))"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "lokaly_admin.settings.test"}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, timeout=50, check=True
    ).stdout.decode()
    assert "reconcile_when_due" in out and "trim_and_prune_when_due" in out
