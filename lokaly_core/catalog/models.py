from __future__ import annotations

import uuid

from django.db import models
from django.db.models.functions import Upper


class Store(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    address = models.CharField(max_length=300)
    lat = models.FloatField()
    lng = models.FloatField()
    is_active = models.BooleanField(default=True)
    is_open = models.BooleanField(default=True)
    # v1.1 "Proof of delivery": deliveries need the customer's hand-off code.
    requires_handoff_code = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(lat__gte=-90, lat__lte=90), name="store_lat_range"
            ),
            models.CheckConstraint(
                condition=models.Q(lng__gte=-180, lng__lte=180), name="store_lng_range"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Product(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    sku = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    price_cents = models.PositiveIntegerField()
    currency = models.CharField(max_length=3, default="EUR")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(currency=Upper("currency")), name="product_currency_upper"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.sku} {self.name}"
