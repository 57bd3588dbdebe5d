"""Input validation and the documented shapes of the admin catalog and stock endpoints."""

from __future__ import annotations

import math
import re
from typing import Any

from rest_framework import serializers

from lokaly_core.domain.inventory import MAX_DELTA, MAX_REASON_LENGTH

CURRENCY = re.compile(r"^[A-Z]{3}$")
MAX_PRICE_CENTS = 2**31 - 1  # the column is a PostgreSQL integer


class FiniteFloatField(serializers.FloatField):
    """A float that is a number: DRF's FloatField takes the strings "nan" and "inf"."""

    def to_internal_value(self, data: Any) -> float:
        value = super().to_internal_value(data)
        if not math.isfinite(value):
            self.fail("invalid")
        return value


class StoreInSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    address = serializers.CharField(max_length=300)
    lat = FiniteFloatField(min_value=-90, max_value=90)
    lng = FiniteFloatField(min_value=-180, max_value=180)
    is_active = serializers.BooleanField(required=False, default=True)
    requires_handoff_code = serializers.BooleanField(
        required=False,
        default=False,
        help_text="v1.1, proof of delivery: couriers complete this store's deliveries "
        "with the customer's 4-digit hand-off code.",
    )


class StorePatchSerializer(StoreInSerializer):
    is_active = serializers.BooleanField(required=False)
    requires_handoff_code = serializers.BooleanField(
        required=False,
        help_text="v1.1: applies to deliveries picked up from now on; one already on its "
        "way keeps the rule it was picked up with.",
    )


class StoreOutSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    address = serializers.CharField()
    lat = serializers.FloatField()
    lng = serializers.FloatField()
    is_active = serializers.BooleanField()
    is_open = serializers.BooleanField()
    requires_handoff_code = serializers.BooleanField()
    created_at = serializers.DateTimeField()


class ProductInSerializer(serializers.Serializer):
    sku = serializers.CharField(max_length=64)
    name = serializers.CharField(max_length=200)
    price_cents = serializers.IntegerField(min_value=0, max_value=MAX_PRICE_CENTS)
    currency = serializers.CharField(min_length=3, max_length=3)
    is_active = serializers.BooleanField(required=False, default=True)

    def validate_currency(self, value: str) -> str:
        if not CURRENCY.match(value):
            raise serializers.ValidationError("An ISO 4217 code in capitals, e.g. EUR.")
        return value


class ProductPatchSerializer(ProductInSerializer):
    is_active = serializers.BooleanField(required=False)


class ProductOutSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    sku = serializers.CharField()
    name = serializers.CharField()
    price_cents = serializers.IntegerField()
    currency = serializers.CharField()
    is_active = serializers.BooleanField()
    created_at = serializers.DateTimeField()


class StrictIntegerField(serializers.IntegerField):
    """An integer given as a JSON number: not ``true`` (a bool is an int in Python), not
    ``"5"``, not ``5.0``."""

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class StockAdjustmentInSerializer(serializers.Serializer):
    product_id = serializers.UUIDField()
    delta = StrictIntegerField(min_value=-MAX_DELTA, max_value=MAX_DELTA)
    reason = serializers.CharField(max_length=MAX_REASON_LENGTH)

    def validate_delta(self, value: int) -> int:
        if value == 0:
            raise serializers.ValidationError("A non-zero whole number of units.")
        return value


class StockRowSerializer(serializers.Serializer):
    product_id = serializers.UUIDField()
    sku = serializers.CharField()
    name = serializers.CharField()
    on_hand = serializers.IntegerField()
    reserved = serializers.IntegerField()
    available = serializers.IntegerField()
