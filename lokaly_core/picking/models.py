from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q


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


class PickingLine(models.Model):
    """What staff found of one ordered product (v1.1, "short picks and substitutions"),
    and the substitute they proposed for the missing units, with the customer's answer.

    One row per (order, product); recording the line again replaces it. A substitute's
    units are reserved while the proposal is ``proposed`` or ``accepted`` and the picking
    is not completed (``Order.stock_lines``); at completion an accepted substitute becomes
    an ``OrderLine`` with ``substitute_for``.
    """

    class SubstitutionStatus(models.TextChoices):
        PROPOSED = "proposed"
        ACCEPTED = "accepted"
        REJECTED = "rejected"
        EXPIRED = "expired"

    id = models.BigAutoField(primary_key=True)
    # Indexed by pickingline_order_product_uniq, which leads with it (tests/test_indexes.py).
    order = models.ForeignKey(
        "core.Order", on_delete=models.CASCADE, related_name="picking_lines", db_index=False
    )
    product = models.ForeignKey("core.Product", on_delete=models.PROTECT, related_name="+")
    ordered_quantity = models.PositiveSmallIntegerField()
    picked_quantity = models.PositiveSmallIntegerField()
    substitute = models.ForeignKey(
        "core.Product", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    substitute_name = models.CharField(max_length=200, blank=True, default="")
    substitute_quantity = models.PositiveSmallIntegerField(null=True, blank=True)
    substitute_unit_price_cents = models.PositiveIntegerField(null=True, blank=True)
    substitution_status = models.CharField(
        max_length=10, choices=SubstitutionStatus.choices, null=True, blank=True
    )
    expires_at = models.DateTimeField(null=True, blank=True)
    answered_at = models.DateTimeField(null=True, blank=True)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    recorded_at = models.DateTimeField()

    class Meta:
        ordering = ["order", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["order", "product"], name="pickingline_order_product_uniq"
            ),
            models.CheckConstraint(
                condition=Q(ordered_quantity__gte=1), name="pickingline_ordered_gte_1"
            ),
            models.CheckConstraint(
                condition=Q(picked_quantity__gte=0, picked_quantity__lte=F("ordered_quantity")),
                name="pickingline_picked_within_ordered",
            ),
            # A substitute comes whole (product, name, quantity, price, status, expiry) or
            # not at all; answered_at is set exactly when the proposal is no longer open.
            models.CheckConstraint(
                condition=(
                    Q(
                        substitute__isnull=True,
                        substitute_quantity__isnull=True,
                        substitute_unit_price_cents__isnull=True,
                        substitution_status__isnull=True,
                        expires_at__isnull=True,
                        answered_at__isnull=True,
                    )
                    | (
                        Q(
                            substitute__isnull=False,
                            substitute_quantity__gte=1,
                            substitute_quantity__lte=99,
                            substitute_unit_price_cents__isnull=False,
                            expires_at__isnull=False,
                        )
                        & (
                            Q(substitution_status="proposed", answered_at__isnull=True)
                            | Q(
                                substitution_status__in=["accepted", "rejected", "expired"],
                                answered_at__isnull=False,
                            )
                        )
                    )
                ),
                name="pickingline_substitute_consistent",
            ),
            models.CheckConstraint(
                condition=~Q(substitute=F("product")), name="pickingline_substitute_not_itself"
            ),
        ]
        indexes = [
            # The worker's expiry scan: open proposals by expiry, nothing else.
            models.Index(
                fields=["substitution_status", "expires_at"],
                condition=Q(substitution_status="proposed"),
                name="pickingline_proposed_exp_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.picked_quantity}/{self.ordered_quantity} of {self.product_id}"
