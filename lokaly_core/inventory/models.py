from __future__ import annotations

from django.db import models
from django.db.models import F, Q


class Stock(models.Model):
    """What one store holds of one product. A store carries a product iff a row exists."""

    id = models.BigAutoField(primary_key=True)
    # Indexed by stock_store_product_uniq, which leads with it (tests/test_indexes.py).
    store = models.ForeignKey(
        "core.Store", on_delete=models.PROTECT, related_name="stock", db_index=False
    )
    product = models.ForeignKey("core.Product", on_delete=models.PROTECT, related_name="stock")
    on_hand = models.IntegerField(default=0)
    reserved = models.IntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["store", "product"], name="stock_store_product_uniq"),
            models.CheckConstraint(condition=Q(reserved__gte=0), name="stock_reserved_gte_0"),
            models.CheckConstraint(
                condition=Q(reserved__lte=F("on_hand")), name="stock_reserved_lte_on_hand"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.store_id}/{self.product_id}: {self.on_hand} on hand, {self.reserved} held"

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved


class StockAdjustment(models.Model):
    """Append-only ledger of manual stock changes: who, when, how much, why."""

    id = models.BigAutoField(primary_key=True)
    # Indexed by adjustment_stock_idx, which leads with it (tests/test_indexes.py).
    stock = models.ForeignKey(
        Stock, on_delete=models.PROTECT, related_name="adjustments", db_index=False
    )
    delta = models.IntegerField()
    reason = models.CharField(max_length=300)
    on_hand_after = models.IntegerField()
    actor = models.ForeignKey(
        "core.User", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["stock", "-created_at"], name="adjustment_stock_idx")]
        constraints = [
            models.CheckConstraint(condition=~Q(delta=0), name="adjustment_delta_not_zero"),
        ]

    def __str__(self) -> str:
        return f"{self.delta:+d} ({self.reason})"
