"""``POST /api/orders`` input without DRF's serializer on the common path.

``PlaceOrderSerializer`` stays what the OpenAPI schema declares and what words every
refusal; running it cost about a fifth of an order's CPU (docs/performance.md, "Lean
intake"). ``place_order_command`` accepts, in plain Python, the bodies the serializer
certainly accepts, with the values it would produce (strings stripped, defaults filled
in); any other body, invalid or merely unusual (a quantity sent as ``"2"``, a latitude as
a string), goes to the serializer, so what is refused, and how, is the serializer's.
"""

from __future__ import annotations

import math
import uuid
from typing import Any

from lokaly_core.domain.model import orders as o
from lokaly_core.domain.services import ItemRequest, PlaceOrder
from lokaly_public.serializers import PlaceOrderSerializer


class _Unsure(Exception):
    """The body is not plainly valid: the serializer decides."""


def place_order_command(data: Any, *, customer_id: uuid.UUID) -> PlaceOrder:
    """The command for a valid body; raises DRF's ``ValidationError`` (the serializer's
    own, word for word) for an invalid one."""
    try:
        return _plainly_valid(data, customer_id)
    except _Unsure:
        pass
    serializer = PlaceOrderSerializer(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.to_command(customer_id=customer_id)


def _plainly_valid(data: Any, customer_id: uuid.UUID) -> PlaceOrder:
    if type(data) is not dict:
        raise _Unsure
    items = data.get("items")
    if type(items) is not list or not 1 <= len(items) <= o.MAX_ITEMS:
        raise _Unsure
    address = data.get("delivery_address")
    if type(address) is not dict:
        raise _Unsure
    note = data.get("note", "")
    return PlaceOrder(
        customer_id=customer_id,
        store_id=_uuid(data.get("store_id")),
        items=[_item(item) for item in items],
        delivery_address=o.Address(
            line1=_text(address.get("line1"), 200, required=True),
            line2=_text(address.get("line2", ""), 200, required=False),
            city=_text(address.get("city"), 100, required=True),
            postal_code=_text(address.get("postal_code"), 20, required=True),
            lat=_number(address.get("lat"), 90),
            lng=_number(address.get("lng"), 180),
        ),
        note=_text(note, o.MAX_NOTE_LENGTH, required=False),
    )


def _item(item: Any) -> ItemRequest:
    if type(item) is not dict:
        raise _Unsure
    quantity = item.get("quantity")
    if type(quantity) is not int or not 1 <= quantity <= o.MAX_QUANTITY:
        raise _Unsure
    return ItemRequest(_uuid(item.get("product_id")), quantity)


def _uuid(value: Any) -> uuid.UUID:
    # DRF's UUIDField parses a string with this same call (``uuid.UUID(hex=...)``).
    if type(value) is not str:
        raise _Unsure
    try:
        return uuid.UUID(value)
    except ValueError:
        raise _Unsure from None


def _text(value: Any, max_length: int, *, required: bool) -> str:
    """As DRF's CharField: stripped, not blank when required, no NUL, no lone surrogate."""
    if type(value) is not str:
        raise _Unsure
    value = value.strip()
    if (required and not value) or len(value) > max_length or "\x00" in value:
        raise _Unsure
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:  # a lone surrogate, which the serializer refuses
            raise _Unsure from None
    return value


def _number(value: Any, bound: float) -> float:
    if type(value) is not float and type(value) is not int:
        raise _Unsure
    try:
        number = float(value)
    except OverflowError:
        raise _Unsure from None
    if not (math.isfinite(number) and -bound <= number <= bound):
        raise _Unsure
    return number
