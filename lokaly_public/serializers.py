"""Input validation and the documented shapes of the public API."""

from __future__ import annotations

import math
import re
from typing import Any

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from lokaly_core.accounts.models import User
from lokaly_core.domain.model import delivery as d
from lokaly_core.domain.model import orders as o
from lokaly_core.domain.model.picking import SubstitutionStatus
from lokaly_core.domain.services import ItemRequest, PlaceOrder
from lokaly_core.web.schema import OPENING_HOURS_SCHEMA

# Choice sets named once in the OpenAPI schema (``ENUM_NAME_OVERRIDES`` in the settings).
ORDER_STATUSES = [s.value for s in o.OrderStatus]
SUBSTITUTION_STATUSES = [s.value for s in SubstitutionStatus]
DELIVERY_STATUSES = [s.value for s in d.DeliveryStatus]
CURRENT_DELIVERY_STATUSES = [
    s.value for s in d.DeliveryStatus if s in d.ACTIVE_DELIVERY or s is d.DeliveryStatus.DELIVERED
]

# "Printable characters": printable ASCII, space included (HTTP header values are ASCII).
PRINTABLE_KEY = re.compile(r"^[\x20-\x7e]{1,255}$")


class RegisterSerializer(serializers.Serializer):
    email = serializers.EmailField(max_length=254)
    password = serializers.CharField(max_length=128, write_only=True, trim_whitespace=False)
    name = serializers.CharField(max_length=150)

    def validate_email(self, value: str) -> str:
        value = value.strip().lower()
        if User.objects.filter(email=value).exists():
            raise serializers.ValidationError("An account with this email already exists.")
        return value

    def validate(self, attrs: dict) -> dict:
        try:
            validate_password(attrs["password"], User(email=attrs["email"], name=attrs["name"]))
        except DjangoValidationError as exc:
            raise serializers.ValidationError({"password": list(exc.messages)}) from exc
        return attrs


class UserSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    email = serializers.EmailField()
    name = serializers.CharField()
    role = serializers.CharField()


class CredentialsSerializer(serializers.Serializer):
    email = serializers.CharField(max_length=254)
    password = serializers.CharField(max_length=128, trim_whitespace=False)


class RefreshSerializer(serializers.Serializer):
    refresh = serializers.CharField(max_length=4096)


class TokenPairSerializer(serializers.Serializer):
    access = serializers.CharField()
    refresh = serializers.CharField()


class PasswordChangeSerializer(serializers.Serializer):
    current_password = serializers.CharField(max_length=128, write_only=True, trim_whitespace=False)
    new_password = serializers.CharField(max_length=128, write_only=True, trim_whitespace=False)


@extend_schema_field(OPENING_HOURS_SCHEMA)
class OpeningHoursField(serializers.JSONField):
    pass


class StoreSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    address = serializers.CharField()
    lat = serializers.FloatField()
    lng = serializers.FloatField()
    is_open = serializers.BooleanField(
        help_text="Open now: taking orders and inside its opening hours (v1.1)."
    )
    opening_hours = OpeningHoursField(source="opening_hours_json", allow_null=True)
    timezone = serializers.CharField(help_text="IANA time zone of opening_hours (v1.1).")
    delivery_radius_m = serializers.IntegerField(
        allow_null=True,
        help_text="Delivers within this many metres of the store (great-circle); null: anywhere.",
    )


class ProductSerializer(serializers.Serializer):
    id = serializers.UUIDField(source="product_id")
    sku = serializers.CharField(source="product.sku")
    name = serializers.CharField(source="product.name")
    price_cents = serializers.IntegerField(source="product.price_cents")
    currency = serializers.CharField(source="product.currency")
    available_quantity = serializers.IntegerField()


class ItemSerializer(serializers.Serializer):
    product_id = serializers.UUIDField()
    quantity = serializers.IntegerField(min_value=1, max_value=o.MAX_QUANTITY)


class AddressSerializer(serializers.Serializer):
    line1 = serializers.CharField(max_length=200)
    line2 = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    city = serializers.CharField(max_length=100)
    postal_code = serializers.CharField(max_length=20)
    lat = serializers.FloatField(min_value=-90, max_value=90)
    lng = serializers.FloatField(min_value=-180, max_value=180)


class PlaceOrderSerializer(serializers.Serializer):
    store_id = serializers.UUIDField()
    # drf-stubs omits the ListSerializer arguments (max_length) that many=True passes on.
    items = ItemSerializer(many=True, allow_empty=False, max_length=o.MAX_ITEMS)  # type: ignore[call-arg]
    delivery_address = AddressSerializer()
    note = serializers.CharField(
        max_length=o.MAX_NOTE_LENGTH, required=False, allow_blank=True, default=""
    )

    def to_command(self, *, customer_id: object) -> PlaceOrder:
        data = self.validated_data
        return PlaceOrder(
            customer_id=customer_id,  # type: ignore[arg-type]
            store_id=data["store_id"],
            items=[ItemRequest(i["product_id"], i["quantity"]) for i in data["items"]],
            delivery_address=o.Address(**data["delivery_address"]),
            note=data["note"],
        )


class CancelSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")


class OrderItemOutSerializer(serializers.Serializer):
    product_id = serializers.UUIDField()
    name = serializers.CharField()
    quantity = serializers.IntegerField()
    unit_price_cents = serializers.IntegerField()
    line_total_cents = serializers.IntegerField(
        help_text="`unit_price_cents` times `picked_quantity` once the order is amended, "
        "else times `quantity`."
    )
    picked_quantity = serializers.IntegerField(
        required=False,
        help_text="v1.1: present once the picking amended the order: what is delivered "
        "(and paid for) of `quantity`.",
    )
    substitute_for = serializers.UUIDField(
        required=False,
        allow_null=True,
        help_text="v1.1: present once amended; on a substitute accepted by the customer, "
        "the ordered product it replaces, else null.",
    )


class SubstituteOutSerializer(serializers.Serializer):
    product_id = serializers.UUIDField()
    name = serializers.CharField()
    quantity = serializers.IntegerField()
    unit_price_cents = serializers.IntegerField()


class SubstitutionOutSerializer(serializers.Serializer):
    """A substitute proposed during the picking for the missing units of ``product_id``."""

    product_id = serializers.UUIDField(help_text="The ordered product it would replace.")
    substitute = SubstituteOutSerializer()
    status = serializers.ChoiceField(choices=SUBSTITUTION_STATUSES)
    expires_at = serializers.DateTimeField(
        help_text="Answer before this; afterwards the proposal counts as `expired` (rejected)."
    )



class CourierRefSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()


class OrderDeliverySerializer(serializers.Serializer):
    """The order's current delivery (assigned, picked up or delivered), else null."""

    id = serializers.UUIDField()
    status = serializers.ChoiceField(choices=CURRENT_DELIVERY_STATUSES)
    courier = CourierRefSerializer()
    assigned_at = serializers.DateTimeField()
    picked_up_at = serializers.DateTimeField(allow_null=True)
    delivered_at = serializers.DateTimeField(allow_null=True)


class OrderOutSerializer(serializers.Serializer):
    """Documentation of the order as returned (rendered by ``order_to_dict``)."""

    id = serializers.UUIDField()
    number = serializers.CharField()
    status = serializers.ChoiceField(choices=ORDER_STATUSES)
    status_version = serializers.IntegerField()
    store_id = serializers.UUIDField()
    customer_id = serializers.UUIDField()
    items = OrderItemOutSerializer(many=True)
    subtotal_cents = serializers.IntegerField()
    delivery_fee_cents = serializers.IntegerField()
    total_cents = serializers.IntegerField()
    currency = serializers.CharField()
    delivery_address = AddressSerializer()
    note = serializers.CharField()
    cancel_reason = serializers.CharField(allow_null=True)
    delivery = OrderDeliverySerializer(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class CustomerOrderSerializer(OrderOutSerializer):
    """The order as its customer reads it (GET, cancel): v1's order plus, in v1.1,
    ``handoff_code`` (a new order, as POST answers it, never has one)."""

    handoff_code = serializers.CharField(
        required=False,
        min_length=4,
        max_length=4,
        help_text="v1.1, proof of delivery: present only while the order is "
        "`out_for_delivery` at a store that requires a hand-off code, and only to the "
        "order's customer (4 digits, to give the courier at the door). Absent otherwise.",
    )
    substitutions = SubstitutionOutSerializer(
        many=True,
        required=False,
        help_text="v1.1: every substitute staff proposed while picking the order, with its "
        "status; absent while none was proposed.",
    )


class StatusChangeSerializer(serializers.Serializer):
    status = serializers.CharField()
    previous_status = serializers.CharField(allow_null=True)
    status_version = serializers.IntegerField()
    occurred_at = serializers.DateTimeField()
    reason = serializers.CharField(allow_null=True)


# -- couriers -------------------------------------------------------------------------------


class StrictBooleanField(serializers.BooleanField):
    """JSON ``true`` or ``false`` only (not ``"yes"``, ``1`` or ``"true"``)."""

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


class CoordinateField(serializers.FloatField):
    """A finite JSON number in range (not a string, not a boolean)."""

    def to_internal_value(self, data: Any) -> float:
        if isinstance(data, bool) or not isinstance(data, int | float):
            self.fail("invalid")
        value = super().to_internal_value(data)
        if not math.isfinite(value):
            self.fail("invalid")
        return value


class ShiftSerializer(serializers.Serializer):
    online = StrictBooleanField()


class LocationSerializer(serializers.Serializer):
    lat = CoordinateField(min_value=-90, max_value=90)
    lng = CoordinateField(min_value=-180, max_value=180)


class DeliveryStoreSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    address = serializers.CharField()
    lat = serializers.FloatField()
    lng = serializers.FloatField()


class DeliveryItemSerializer(serializers.Serializer):
    name = serializers.CharField()
    quantity = serializers.IntegerField()


class DeliverySerializer(serializers.Serializer):
    """Documentation of a delivery as the courier sees it (rendered by ``delivery_to_dict``)."""

    id = serializers.UUIDField()
    order_id = serializers.UUIDField()
    order_number = serializers.CharField()
    order_status = serializers.ChoiceField(choices=ORDER_STATUSES)
    status = serializers.ChoiceField(choices=DELIVERY_STATUSES)
    store = DeliveryStoreSerializer()
    delivery_address = AddressSerializer()
    customer_name = serializers.CharField()
    note = serializers.CharField()
    items = DeliveryItemSerializer(many=True)
    assigned_at = serializers.DateTimeField()
    picked_up_at = serializers.DateTimeField(allow_null=True)
    delivered_at = serializers.DateTimeField(allow_null=True)
    handoff_code_required = serializers.BooleanField(
        required=False,
        help_text="v1.1: present (always `true`) once a delivery from a store that "
        "requires a hand-off code is picked up: complete it with the customer's code.",
    )
    handoff_attempts_left = serializers.IntegerField(
        required=False,
        help_text="v1.1: with `handoff_code_required`, wrong codes left before the "
        "delivery is locked (0: locked until staff complete it).",
    )


class DeliveryCompleteSerializer(serializers.Serializer):
    handoff_code = serializers.CharField(
        required=False,
        allow_blank=True,
        allow_null=True,
        max_length=16,
        help_text="v1.1: the customer's hand-off code, required when the delivery has one "
        "(`handoff_code_required`); ignored otherwise.",
    )


# -- notifications --------------------------------------------------------------------------


class NotificationSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    type = serializers.CharField()
    title = serializers.CharField()
    body = serializers.CharField()
    order_id = serializers.UUIDField(allow_null=True)
    created_at = serializers.DateTimeField()
    read_at = serializers.DateTimeField(allow_null=True)


class NotificationFilterSerializer(serializers.Serializer):
    unread = serializers.BooleanField(required=False, default=False)


class SubstitutionAnswerSerializer(serializers.Serializer):
    accept = StrictBooleanField(help_text="`true` to take the substitute, `false` to refuse it.")
