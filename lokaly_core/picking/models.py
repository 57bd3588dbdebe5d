from __future__ import annotations

from django.conf import settings
from django.db import models


class Picking(models.Model):
    """Store staff collecting an order's items: started, then completed (one per order)."""

    class Status(models.TextChoices):
        STARTED = "started"
        COMPLETED = "completed"

    id = models.BigAutoField(primary_key=True)
    order = models.OneToOneField("core.Order", on_delete=models.CASCADE, related_name="picking")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.STARTED)
    started_at = models.DateTimeField()
    completed_at = models.DateTimeField(null=True, blank=True)
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    completed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    def __str__(self) -> str:
        return f"picking of {self.order_id}: {self.status}"
