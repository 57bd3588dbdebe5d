"""How far behind the event pipeline is: the figures behind the worker's Prometheus gauges
(``lokaly_worker.metrics``) and the ``events stats`` command.

- per consumer group of the event stream: pending entries, lag (entries not yet read),
  consumers, and the age of the oldest pending entry (from its stream id, which is the
  time it was added, so a retried or stuck entry shows its full age);
- the dead-letter stream's length;
- the outbox backlog: rows not yet published, and the age of the oldest of them (a
  partial index, ``outbox_unpublished_idx``, keeps this one cheap query);
- what waits behind the events: orders in the dispatch queue (no free courier) and how
  long the oldest has waited; notifications not yet sent, and those given up on.

Missing streams or groups (first start, Redis lost its data) read as empty.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, cast

import redis
from django.conf import settings
from django.db.models import Count, Min, Q
from django.utils import timezone

from lokaly_core.delivery.models import DispatchTask
from lokaly_core.notifications.models import Notification
from lokaly_core.outbox.models import OutboxEvent
from lokaly_core.redis_client import get_redis


@dataclass(frozen=True)
class GroupHealth:
    name: str
    pending: int
    lag: int | None  # None when Redis cannot tell (entries deleted or trimmed behind it)
    consumers: int
    oldest_pending_age_s: float | None  # None when nothing is pending


@dataclass(frozen=True)
class PipelineHealth:
    stream: str
    stream_length: int
    groups: list[GroupHealth] = field(default_factory=list)
    dead_letters: int = 0
    outbox_unpublished: int = 0
    outbox_oldest_unpublished_age_s: float | None = None
    dispatch_waiting: int = 0
    dispatch_oldest_wait_s: float | None = None
    notifications_pending: int = 0
    notifications_failed: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def pipeline_health(*, client: redis.Redis | None = None) -> PipelineHealth:
    client = client or get_redis()
    stream = settings.EVENT_STREAM
    now_ms = time.time() * 1000
    outbox = OutboxEvent.objects.filter(published_at__isnull=True).aggregate(
        count=Count("pk"), oldest=Min("created_at")
    )
    oldest = outbox["oldest"]
    waiting = DispatchTask.objects.aggregate(count=Count("pk"), oldest=Min("created_at"))
    sends = Notification.objects.filter(
        send_status__in=[Notification.SendStatus.PENDING, Notification.SendStatus.FAILED]
    ).aggregate(
        pending=Count("pk", filter=Q(send_status=Notification.SendStatus.PENDING)),
        failed=Count("pk", filter=Q(send_status=Notification.SendStatus.FAILED)),
    )
    return PipelineHealth(
        stream=stream,
        stream_length=_xlen(client, stream),
        groups=_groups(client, stream, now_ms),
        dead_letters=_xlen(client, settings.DEAD_LETTER_STREAM),
        outbox_unpublished=int(outbox["count"]),
        outbox_oldest_unpublished_age_s=_age_s(oldest),
        dispatch_waiting=int(waiting["count"]),
        dispatch_oldest_wait_s=_age_s(waiting["oldest"]),
        notifications_pending=int(sends["pending"]),
        notifications_failed=int(sends["failed"]),
    )


def _age_s(since: Any) -> float | None:
    return None if since is None else max(0.0, (timezone.now() - since).total_seconds())


def _groups(client: redis.Redis, stream: str, now_ms: float) -> list[GroupHealth]:
    try:
        groups = cast("list[dict[str, Any]]", client.xinfo_groups(stream))
    except redis.ResponseError as exc:
        if "no such key" not in str(exc).lower():
            raise
        return []
    result = []
    for group in groups:
        name = _text(group["name"])
        pending = int(group["pending"])
        oldest_age = None
        if pending:
            summary = cast("dict[str, Any]", client.xpending(stream, name))
            if summary.get("min"):
                oldest_age = max(0.0, (now_ms - _id_ms(_text(summary["min"]))) / 1000)
        result.append(
            GroupHealth(
                name=name,
                pending=pending,
                lag=None if group.get("lag") is None else int(group["lag"]),
                consumers=int(group["consumers"]),
                oldest_pending_age_s=oldest_age,
            )
        )
    return result


def _xlen(client: redis.Redis, name: str) -> int:
    return cast(int, client.xlen(name))


def _id_ms(entry_id: str) -> int:
    return int(entry_id.partition("-")[0])


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
