from __future__ import annotations

import uuid
from datetime import datetime

from django.db import models
from django.db.models.functions import Upper
from django.utils import timezone as dj_timezone

from lokaly_core.domain.hours import (
    StoreHours,
    WeeklyHours,
    hours_as_json,
    hours_from_json,
    zone,
)

MIN_DELIVERY_RADIUS_M = 100
MAX_DELIVERY_RADIUS_M = 50_000


class Store(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    address = models.CharField(max_length=300)
    lat = models.FloatField()
    lng = models.FloatField()
    is_active = models.BooleanField(default=True)
    # v1.1 (docs/api.md, "Stores: opening hours and delivery area"). v1's stored
    # ``is_open`` became ``accepting_orders``: ``is_open`` is now computed from it and the
    # hours (``is_open_at``).
    accepting_orders = models.BooleanField(
        default=True, help_text="Off: the store takes no orders until staff turn it on again."
    )
    timezone = models.CharField(
        max_length=64, default="UTC", help_text="IANA time zone name, e.g. Europe/Amsterdam."
    )
    opening_hours = models.JSONField(
        null=True,
        blank=True,
        help_text=(
            'Per weekday, local intervals: {"mon": [["08:00", "22:00"]], "sat": [["22:00", '
            '"02:00"]]} (past midnight belongs to the day it starts; a day left out is closed). '
            "Empty: always open."
        ),
    )
    delivery_radius_m = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text=(
            f"Delivers within this many metres ({MIN_DELIVERY_RADIUS_M} to "
            f"{MAX_DELIVERY_RADIUS_M:,}); empty: no limit."
        ),
    )
    requires_handoff_code = models.BooleanField(
        default=False, help_text="Couriers must enter the customer's 4-digit code on delivery."
    )
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
            models.CheckConstraint(
                condition=models.Q(delivery_radius_m__isnull=True)
                | models.Q(
                    delivery_radius_m__gte=MIN_DELIVERY_RADIUS_M,
                    delivery_radius_m__lte=MAX_DELIVERY_RADIUS_M,
                ),
                name="store_delivery_radius_range",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def hours(self) -> StoreHours:
        """The store's schedule and pause as the domain reads them."""
        return store_hours(self.timezone, self.opening_hours, self.accepting_orders)

    def is_open_at(self, now: datetime) -> bool:
        return self.hours.is_open(now)

    @property
    def is_open(self) -> bool:
        """Open now (the clock read at each call)."""
        return self.is_open_at(dj_timezone.now())

    @property
    def opening_hours_json(self) -> dict[str, list[list[str]]] | None:
        """``opening_hours`` with every weekday, each day's intervals by start."""
        weekly: WeeklyHours | None = hours_from_json(self.opening_hours)
        return hours_as_json(weekly)


def store_hours(tz_name: str, opening_hours: object, accepting_orders: bool) -> StoreHours:
    """A store's stored hours (validated when written) as the domain's ``StoreHours``."""
    return StoreHours(
        timezone=zone(tz_name),
        hours=hours_from_json(opening_hours),
        accepting_orders=accepting_orders,
    )


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
