from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

from lokaly_core.domain.model.orders import OrderStatus, StockState


class Order(models.Model):
    # django-stubs types the functional API with a names string only, not (value, label) pairs.
    Status = models.TextChoices("Status", [(s.value, s.value) for s in OrderStatus])  # type: ignore[call-overload]

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Unique by the constraint in Meta: ``unique=True`` also builds a second index on the
    # column (varchar_pattern_ops, for LIKE), which nothing here queries.
    number = models.CharField(max_length=20)
    # No index of their own: the Meta indexes that lead with the column serve every query,
    # and the foreign key checks, by it. Each index of this table gets a new entry for
    # every order written and every status change (docs/performance.md, sixth session).
    customer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="orders", db_index=False
    )
    store = models.ForeignKey(
        "core.Store", on_delete=models.PROTECT, related_name="orders", db_index=False
    )
    status = models.CharField(max_length=20, choices=Status.choices, default=OrderStatus.PENDING)
    status_version = models.PositiveIntegerField(default=1)
    subtotal_cents = models.PositiveIntegerField()
    delivery_fee_cents = models.PositiveIntegerField()
    total_cents = models.PositiveIntegerField()
    currency = models.CharField(max_length=3)
    delivery_address = models.JSONField()
    note = models.CharField(max_length=500, blank=True, default="")
    cancel_reason = models.CharField(max_length=300, null=True, blank=True)
    stock_state = models.CharField(
        max_length=10,
        choices=[(s.value, s.value) for s in StockState],
        default=StockState.NONE,
    )
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(fields=["customer", "-created_at"], name="order_customer_created_idx"),
            models.Index(fields=["-created_at"], name="order_created_idx"),
            models.Index(fields=["status", "-created_at"], name="order_status_created_idx"),
            models.Index(fields=["store", "-created_at"], name="order_store_created_idx"),
            # The admin list's store + status filter, newest (or oldest) first.
            models.Index(
                fields=["store", "status", "-created_at"], name="order_store_status_created_idx"
            ),
            # Order intake's open-orders limit (MAX_OPEN_ORDERS_PER_CUSTOMER) counts these:
            # a customer's orders on their way, not every order they ever placed.
            models.Index(
                fields=["customer"],
                condition=~Q(status__in=["delivered", "cancelled"]),
                name="order_customer_open_idx",
            ),
        ]
        constraints = [
            models.UniqueConstraint(fields=["number"], name="order_number_uniq"),
            models.CheckConstraint(
                condition=Q(
                    total_cents=models.F("subtotal_cents") + models.F("delivery_fee_cents")
                ),
                name="order_total_adds_up",
            ),
        ]

    def __str__(self) -> str:
        return self.number


class OrderLine(models.Model):
    id = models.BigAutoField(primary_key=True)
    # Indexed by orderline_order_product_uniq, which leads with it.
    order = models.ForeignKey(
        Order, on_delete=models.CASCADE, related_name="lines", db_index=False
    )
    product = models.ForeignKey("core.Product", on_delete=models.PROTECT, related_name="+")
    name = models.CharField(max_length=200)
    quantity = models.PositiveSmallIntegerField()
    unit_price_cents = models.PositiveIntegerField()
    line_total_cents = models.PositiveIntegerField()
    # v1.1 ("short picks and substitutions"), set when the picking amended the order:
    # what was picked of ``quantity`` (null: never amended, the v1 line), and for a
    # substitute the ordered product it replaces. ``line_total_cents`` follows
    # ``picked_quantity`` once it is set.
    picked_quantity = models.PositiveSmallIntegerField(null=True, blank=True)
    substitute_for = models.ForeignKey(
        "core.Product", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["order", "product"], name="orderline_order_product_uniq"
            ),
            models.CheckConstraint(condition=Q(quantity__gte=1), name="orderline_quantity_gte_1"),
            models.CheckConstraint(
                condition=Q(picked_quantity__isnull=True)
                | Q(picked_quantity__lte=models.F("quantity")),
                name="orderline_picked_lte_quantity",
            ),
            models.CheckConstraint(
                condition=Q(substitute_for__isnull=True) | Q(picked_quantity__isnull=False),
                name="orderline_substitute_is_amended",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.quantity} x {self.name}"


class OrderStatusChange(models.Model):
    """The order's history, one row per status version: what sockets replay with ``since``."""

    id = models.BigAutoField(primary_key=True)
    # Indexed by statuschange_order_version_uniq, which leads with it.
    order = models.ForeignKey(
        Order, on_delete=models.CASCADE, related_name="history", db_index=False
    )
    status = models.CharField(max_length=20, choices=Order.Status.choices)
    previous_status = models.CharField(max_length=20, null=True, blank=True)
    status_version = models.PositiveIntegerField()
    occurred_at = models.DateTimeField()
    reason = models.CharField(max_length=300, null=True, blank=True)
    # The staff account that made the change (v1.1: an admin's delivery completion);
    # null for the customer's, the courier's and the system's changes.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )

    class Meta:
        ordering = ["order", "status_version"]
        constraints = [
            models.UniqueConstraint(
                fields=["order", "status_version"], name="statuschange_order_version_uniq"
            ),
        ]

    def __str__(self) -> str:
        return f"v{self.status_version} {self.status}"


class IdempotencyKey(models.Model):
    """A customer's ``Idempotency-Key`` and the response it produced, replayed on retry."""

    id = models.BigAutoField(primary_key=True)
    # Indexed by idempotency_customer_key_uniq, which leads with it.
    customer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    key = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64)
    response_status = models.PositiveSmallIntegerField(null=True)
    response_body = models.JSONField(null=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "key"], name="idempotency_customer_key_uniq"
            ),
        ]
        indexes = [models.Index(fields=["created_at"], name="idempotency_created_idx")]

    def __str__(self) -> str:
        return self.key
