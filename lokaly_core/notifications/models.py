from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q


class Notification(models.Model):
    """A message for a customer or courier: listed over the API and sent through the
    configured sender (``lokaly_core.notifications.senders``), retried on failure."""

    class SendStatus(models.TextChoices):
        PENDING = "pending"
        SENT = "sent"
        FAILED = "failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Indexed by notification_user_idx, which leads with it.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="notifications",
        db_index=False,
    )
    type = models.CharField(max_length=50)
    title = models.CharField(max_length=200)
    body = models.CharField(max_length=1000)
    order = models.ForeignKey(
        "core.Order", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    # The event that caused it: with ``user`` and ``type``, at most one notification.
    event_id = models.UUIDField(null=True, blank=True)
    created_at = models.DateTimeField()
    read_at = models.DateTimeField(null=True, blank=True)
    send_status = models.CharField(
        max_length=10, choices=SendStatus.choices, default=SendStatus.PENDING
    )
    send_attempts = models.PositiveSmallIntegerField(default=0)
    next_send_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True, default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["event_id", "user", "type"], name="notification_event_user_type_uniq"
            )
        ]
        indexes = [
            models.Index(fields=["user", "-created_at"], name="notification_user_idx"),
            models.Index(
                fields=["next_send_at"],
                condition=Q(send_status="pending"),
                name="notification_to_send_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.type} for {self.user_id}"
