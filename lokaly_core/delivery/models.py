from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

from lokaly_core.domain.model.delivery import ACTIVE_DELIVERY, DeliveryStatus

_ACTIVE = Q(status__in=sorted(s.value for s in ACTIVE_DELIVERY))


class CourierState(models.Model):
    """A courier's shift, last known location and current delivery (one row per courier,
    created on their first shift or location update)."""

    courier = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="courier_state",
    )
    is_online = models.BooleanField(default=False)
    lat = models.FloatField(null=True, blank=True)
    lng = models.FloatField(null=True, blank=True)
    location_at = models.DateTimeField(null=True, blank=True)
    # Free since (dispatch ties go to whoever has waited longest).
    available_since = models.DateTimeField()
    current_delivery = models.OneToOneField(
        "core.Delivery", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["available_since"],
                condition=Q(is_online=True, current_delivery__isnull=True),
                name="courier_free_idx",
            )
        ]

    def __str__(self) -> str:
        return f"courier {self.courier_id}: {'online' if self.is_online else 'offline'}"


class Delivery(models.Model):
    """One assignment of an order to a courier. A declined or cancelled assignment stays
    as history; an order has at most one active delivery, a courier at most one."""

    # django-stubs types the functional API with a names string only, not (value, label) pairs.
    Status = models.TextChoices("Status", [(s.value, s.value) for s in DeliveryStatus])  # type: ignore[call-overload]

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Both indexed by the Meta indexes that lead with them (delivery_order_idx,
    # delivery_courier_idx), not by indexes of their own (tests/test_indexes.py).
    order = models.ForeignKey(
        "core.Order", on_delete=models.CASCADE, related_name="deliveries", db_index=False
    )
    courier = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="deliveries",
        db_index=False,
    )
    status = models.CharField(max_length=20, choices=Status.choices)
    assigned_at = models.DateTimeField()
    picked_up_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    # v1.1 "Proof of delivery": set at pickup when the store requires a code. Kept in
    # clear: the customer is shown it (four digits; a hash would not hide them anyway).
    handoff_code = models.CharField(max_length=4, null=True, blank=True)
    handoff_failed_attempts = models.PositiveSmallIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["order"], condition=_ACTIVE, name="delivery_one_active_per_order"
            ),
            models.UniqueConstraint(
                fields=["courier"], condition=_ACTIVE, name="delivery_one_active_per_courier"
            ),
        ]
        indexes = [
            models.Index(fields=["order", "-assigned_at"], name="delivery_order_idx"),
            models.Index(fields=["courier", "-assigned_at"], name="delivery_courier_idx"),
        ]

    def __str__(self) -> str:
        return f"delivery {self.id}: {self.status}"


class DispatchTask(models.Model):
    """An order waiting for a free courier, tried again at ``next_attempt_at``."""

    order = models.OneToOneField(
        "core.Order", on_delete=models.CASCADE, primary_key=True, related_name="+"
    )
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            models.Index(fields=["next_attempt_at"], name="dispatch_due_idx"),
            # The queue in waiting order with the due time alongside: the due-order scan
            # reads it in order and stops at its LIMIT (an index-only scan), however many
            # orders wait.
            models.Index(
                fields=["created_at"], include=["next_attempt_at"], name="dispatch_wait_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"dispatch of {self.order_id}"
