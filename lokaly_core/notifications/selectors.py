"""Read side of notifications, for their owners (customers and couriers)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any
from uuid import UUID

from django.db.models import QuerySet

from lokaly_core.domain.errors import NotFound
from lokaly_core.events.contracts import format_timestamp
from lokaly_core.notifications.models import Notification


def user_notifications(*, user_id: UUID, unread_only: bool = False) -> QuerySet[Notification]:
    """The user's notifications (ordered by the caller's paginator, newest first)."""
    qs = Notification.objects.filter(user_id=user_id)
    if unread_only:
        qs = qs.filter(read_at__isnull=True)
    return qs


def notification_to_dict(notification: Notification) -> dict[str, Any]:
    return {
        "id": str(notification.id),
        "type": notification.type,
        "title": notification.title,
        "body": notification.body,
        "order_id": str(notification.order_id) if notification.order_id else None,
        "created_at": format_timestamp(notification.created_at),
        "read_at": format_timestamp(notification.read_at) if notification.read_at else None,
    }


# Marking read is the one write on this side: a single guarded UPDATE with no event,
# kept beside the reads rather than in services.py (the sending pipeline).
def notification_mark_read(
    *, notification_id: UUID, user_id: UUID, clock: Callable[[], datetime]
) -> None:
    """Set ``read_at`` once (reading again keeps the first); another user's is not found."""
    updated = Notification.objects.filter(
        pk=notification_id, user_id=user_id, read_at__isnull=True
    ).update(read_at=clock())
    mine = Notification.objects.filter(pk=notification_id, user_id=user_id)
    if not updated and not mine.exists():
        raise NotFound("No such notification.")
