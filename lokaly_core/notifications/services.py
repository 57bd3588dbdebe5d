"""Notifications: written by the worker from events, sent by its sender thread.

Writing (``notify_for_event``, or ``notify_for_events`` for a worker batch's events at
once) happens in the handler's transaction, together with the event's dedup marker; a
notification is unique per (event, user, type), so a replayed event adds nothing. Writing
has no other effect: no webhook is called and no outbox row recorded; the sender thread
finds the pending rows by themselves.

Sending (``send_due``) is at least once: due rows are claimed with a lease (their
``next_send_at`` moves past the time the batch may take), sent outside any transaction,
then marked sent (a batch's sent rows in one statement, at least every second), or failed
with a backoff. A process that dies mid-batch leaves its rows to be claimed again when the
lease runs out, so a receiver may see one twice: the JSON carries the notification ``id``
to deduplicate on.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone

from lokaly_core.domain.notifications import (
    NotificationDraft,
    SendPolicy,
    notification_drafts,
    notifies,
)
from lokaly_core.events import Envelope, EventPayload
from lokaly_core.events.contracts import format_timestamp
from lokaly_core.notifications.models import Notification
from lokaly_core.notifications.senders import Sender
from lokaly_core.orders.models import Order
from lokaly_core.sql import insert_recordset, unnest

logger = logging.getLogger("lokaly.notifications")

_TABLE = Notification._meta.db_table
_PENDING = Notification.SendStatus.PENDING
# Leave room for every send of a batch to time out before the lease runs out.
_LEASE_MARGIN_S = 30
# Sent rows are marked at the latest this often while a batch is still sending.
_MARK_SENT_EVERY_S = 1.0


def notify_for_event(*, envelope: Envelope, event: EventPayload) -> int:
    """Write the event's notifications (pending, due now). Run inside the handler's
    transaction; returns how many the event calls for (0 for most events)."""
    if not notifies(event):
        return 0
    order_id = getattr(event, "order_id", None)
    if order_id is None:
        return 0
    number = Order.objects.filter(pk=order_id).values_list("number", flat=True).first()
    if number is None:
        return 0
    drafts = notification_drafts(event, order_number=number)
    now = timezone.now()
    Notification.objects.bulk_create(
        [_row(draft, event_id=envelope.event_id, now=now) for draft in drafts],
        ignore_conflicts=True,
    )
    return len(drafts)


def notify_for_events(pairs: Sequence[tuple[Envelope, EventPayload]]) -> int:
    """``notify_for_event`` for many events (a worker batch's, in stream order) in two
    statements whatever their number: one read of their orders' numbers and one multi-row
    ``INSERT ... ON CONFLICT DO NOTHING``. Same rows as event by event: an event whose
    order is not found writes nothing, and ``created_at`` follows the events' order (each
    event's own clock reading, kept strictly increasing) so that lists and sending keep
    it. Returns how many the events call for."""
    wanted = [
        (envelope, event, order_id)
        for envelope, event in pairs
        if notifies(event) and (order_id := getattr(event, "order_id", None)) is not None
    ]
    if not wanted:
        return 0
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id, number FROM {Order._meta.db_table} WHERE id = ANY(%s)",  # noqa: S608
            [list({order_id for _, _, order_id in wanted})],
        )
        numbers = dict(cursor.fetchall())
    rows: list[tuple[object, ...]] = []
    now: datetime | None = None
    for envelope, event, order_id in wanted:
        number = numbers.get(order_id)
        if number is None:
            continue
        clock = timezone.now()
        now = clock if now is None or clock > now else now + timedelta(microseconds=1)
        rows.extend(
            (uuid.uuid4(), draft.user_id, draft.type, draft.title, draft.body, draft.order_id)
            + (envelope.event_id, now, now, _PENDING, 0, "")
            for draft in notification_drafts(event, order_number=number)
        )
    if rows:
        # One statement whatever the batch's size (``insert_recordset``: the same text for
        # any number of rows).
        sql, params = insert_recordset(Notification, _BATCH_COLUMNS, rows)
        with connection.cursor() as cursor:
            cursor.execute(f"{sql} ON CONFLICT DO NOTHING", params)
    return len(rows)


_BATCH_COLUMNS = (
    "id",
    "user_id",
    "type",
    "title",
    "body",
    "order_id",
    "event_id",
    "created_at",
    "next_send_at",
    "send_status",
    "send_attempts",
    "last_error",
)


def _row(draft: NotificationDraft, *, event_id: uuid.UUID, now: datetime) -> Notification:
    return Notification(
        user_id=draft.user_id,
        type=draft.type,
        title=draft.title,
        body=draft.body,
        order_id=draft.order_id,
        event_id=event_id,
        created_at=now,
        next_send_at=now,
    )


def send_policy() -> SendPolicy:
    return SendPolicy(
        max_attempts=settings.NOTIFICATION_MAX_ATTEMPTS,
        retry_base_ms=settings.NOTIFICATION_RETRY_BASE_MS,
        retry_max_ms=settings.NOTIFICATION_RETRY_MAX_MS,
    )


def send_due(
    sender: Sender, *, batch: int = 50, should_stop: Callable[[], bool] | None = None
) -> int:
    """Send up to ``batch`` due notifications; returns how many were tried.

    Call outside any transaction: each claim and each outcome commits on its own, and no
    row lock is held while the sender talks to the network. When ``should_stop()`` turns
    true (the worker is shutting down) the rest of the batch is handed back, due now.
    """
    if connection.in_atomic_block:
        raise RuntimeError("send_due must run outside a transaction")
    policy = send_policy()
    lease = timedelta(seconds=settings.NOTIFICATION_WEBHOOK_TIMEOUT_S * batch + _LEASE_MARGIN_S)
    claimed = _claim_due(batch, now=timezone.now(), lease=lease)
    # The rows sent are marked together, in one statement per batch (or per
    # _MARK_SENT_EVERY_S of sending, for a slow receiver): one row per statement and
    # commit was a statement and a WAL flush per notification, the worker's busiest
    # statement by count (docs/performance.md). A crash before the mark resends those
    # rows when their lease runs out, as a crash between a send and its mark always could.
    sent: list[tuple[str, int]] = []
    marked_at = time.monotonic()
    try:
        for index, row in enumerate(claimed):
            if should_stop is not None and should_stop():
                _release([r["id"] for r in claimed[index:]])
                return index
            attempts = row.pop("send_attempts") + 1
            try:
                sender.send(row)
            except Exception as exc:  # any failure is retried, never fatal
                _mark_failed(row["id"], attempts, f"{type(exc).__name__}: {exc}", policy)
            else:
                sent.append((row["id"], attempts))
                if time.monotonic() - marked_at >= _MARK_SENT_EVERY_S:
                    _mark_sent(sent)
                    sent, marked_at = [], time.monotonic()
    finally:
        _mark_sent(sent)
    return len(claimed)


def _claim_due(batch: int, *, now: datetime, lease: timedelta) -> list[dict[str, Any]]:
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {_TABLE} SET next_send_at = %s WHERE id IN ("  # noqa: S608 - our table
            f"SELECT id FROM {_TABLE} WHERE send_status = %s AND next_send_at <= %s "
            "ORDER BY next_send_at LIMIT %s FOR UPDATE SKIP LOCKED) "
            "RETURNING id, user_id, type, title, body, order_id, event_id, created_at, "
            "send_attempts",
            [now + lease, _PENDING, now, batch],
        )
        rows = cursor.fetchall()
    rows.sort(key=lambda r: r[7])  # oldest first, as they were created
    return [
        {
            "id": str(nid),
            "user_id": str(user_id),
            "type": kind,
            "title": title,
            "body": body,
            "order_id": str(order_id) if order_id else None,
            "event_id": str(event_id) if event_id else None,
            "created_at": format_timestamp(created_at),
            "send_attempts": attempts,
        }
        for nid, user_id, kind, title, body, order_id, event_id, created_at, attempts in rows
    ]


def _release(notification_ids: list[str]) -> None:
    Notification.objects.filter(pk__in=notification_ids, send_status=_PENDING).update(
        next_send_at=timezone.now()
    )


def _mark_sent(sent: Sequence[tuple[str, int]]) -> None:
    """Mark each (id, attempts) sent, in one statement."""
    if not sent:
        return
    source, rows = unnest(("id", "attempts"), ("uuid", "int"), sent)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {_TABLE} AS n SET send_status = %s, sent_at = %s, "  # noqa: S608 - ours
            f"send_attempts = v.attempts, last_error = '' FROM {source} "
            "WHERE n.id = v.id AND n.send_status = %s",
            [Notification.SendStatus.SENT, timezone.now(), *rows, _PENDING],
        )


def _mark_failed(notification_id: str, attempts: int, error: str, policy: SendPolicy) -> None:
    now = timezone.now()
    given_up = policy.gives_up(attempts)
    changes: dict[str, Any] = {"send_attempts": attempts, "last_error": error[:500]}
    if given_up:
        changes["send_status"] = Notification.SendStatus.FAILED
    else:
        changes["next_send_at"] = policy.next_attempt(uuid.UUID(notification_id), attempts, now)
    Notification.objects.filter(pk=notification_id, send_status=_PENDING).update(**changes)
    log = logger.error if given_up else logger.warning
    log(
        "notification send failed",
        extra={
            "notification_id": notification_id,
            "attempts": attempts,
            "error": error,
            "outcome": "failed" if given_up else "retry",
        },
    )
