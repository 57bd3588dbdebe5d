"""Read side of deliveries: an order's current delivery, and a courier's deliveries.

An order's *current* delivery is its assignment that is assigned, picked up or
delivered (declined and cancelled ones are history): at most one, since an order has at
most one active delivery and a delivered order is never dispatched again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from uuid import UUID

from django.db.models import F, Prefetch, QuerySet

from lokaly_core.delivery.models import Delivery
from lokaly_core.domain.errors import NotFound
from lokaly_core.domain.model.delivery import (
    ACTIVE_DELIVERY,
    MAX_HANDOFF_ATTEMPTS,
    DeliveryStatus,
)
from lokaly_core.events.contracts import format_timestamp
from lokaly_core.orders.models import OrderLine

CURRENT = [*(s.value for s in ACTIVE_DELIVERY), DeliveryStatus.DELIVERED.value]
ACTIVE = [s.value for s in ACTIVE_DELIVERY]
# Where ``current_delivery_prefetch`` puts the order's current delivery (a list of 0 or 1).
CURRENT_ATTR = "current_deliveries"


def _timestamp(value: Any) -> str | None:
    return format_timestamp(value) if value is not None else None


# -- on the order ---------------------------------------------------------------------------


def current_delivery_prefetch() -> Prefetch:
    """Prefetch an order queryset's current deliveries (one query per page of orders)."""
    return Prefetch(
        "deliveries",
        queryset=Delivery.objects.filter(status__in=CURRENT)
        .select_related("courier")
        .order_by("-assigned_at"),
        to_attr=CURRENT_ATTR,
    )


def order_delivery_to_dict(delivery: Delivery | None) -> dict[str, Any] | None:
    """``{id, status, courier: {id, name}, assigned_at, picked_up_at, delivered_at}``."""
    if delivery is None:
        return None
    return _order_delivery(
        {
            "id": delivery.id,
            "status": delivery.status,
            "courier_id": delivery.courier_id,
            "courier_name": delivery.courier.name,
            "assigned_at": delivery.assigned_at,
            "picked_up_at": delivery.picked_up_at,
            "delivered_at": delivery.delivered_at,
        }
    )


def _order_delivery(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "status": str(row["status"]),
        "courier": {"id": str(row["courier_id"]), "name": row["courier_name"]},
        "assigned_at": format_timestamp(row["assigned_at"]),
        "picked_up_at": _timestamp(row["picked_up_at"]),
        "delivered_at": _timestamp(row["delivered_at"]),
    }


def current_delivery_of(order: Any) -> dict[str, Any] | None:
    """The order's current delivery as a dict: from the prefetch when there is one, else
    read (one query)."""
    prefetched = getattr(order, CURRENT_ATTR, None)
    if prefetched is None:
        prefetched = list(
            Delivery.objects.filter(order_id=order.id, status__in=CURRENT)
            .select_related("courier")
            .order_by("-assigned_at")[:1]
        )
    return order_delivery_to_dict(prefetched[0] if prefetched else None)


def current_handoff_code_of(order: Any) -> str | None:
    """The hand-off code of the order's current delivery, if it has one (v1.1): from the
    prefetch when there is one, else read (one query). Only the customer is shown it."""
    prefetched = getattr(order, CURRENT_ATTR, None)
    if prefetched is not None:
        return prefetched[0].handoff_code if prefetched else None
    return (
        Delivery.objects.filter(order_id=order.id, status__in=CURRENT)
        .order_by("-assigned_at")
        .values_list("handoff_code", flat=True)
        .first()
    )


def current_deliveries_by_order(order_ids: Iterable[UUID]) -> dict[UUID, dict[str, Any]]:
    """The current delivery of each of these orders that has one (one query)."""
    ids = list(order_ids)
    if not ids:
        return {}
    rows = (
        Delivery.objects.filter(order_id__in=ids, status__in=CURRENT)
        .order_by("order_id", "-assigned_at")
        .distinct("order_id")
        .values(
            "id",
            "order_id",
            "status",
            "courier_id",
            "assigned_at",
            "picked_up_at",
            "delivered_at",
            courier_name=F("courier__name"),
        )
    )
    return {row["order_id"]: _order_delivery(row) for row in rows}


# -- for the courier ------------------------------------------------------------------------


def _courier_deliveries(courier_id: UUID) -> QuerySet[Delivery]:
    return (
        Delivery.objects.filter(courier_id=courier_id)
        .select_related("order", "order__store", "order__customer")
        .prefetch_related(Prefetch("order__lines", queryset=OrderLine.objects.order_by("id")))
    )


def courier_active_deliveries(courier_id: UUID) -> QuerySet[Delivery]:
    """The courier's assigned and picked-up deliveries (render with ``delivery_to_dict``)."""
    return _courier_deliveries(courier_id).filter(status__in=ACTIVE)


def courier_delivery(*, delivery_id: UUID, courier_id: UUID) -> Delivery:
    """One of the courier's deliveries, whatever its status; another courier's is "not
    found"."""
    delivery = _courier_deliveries(courier_id).filter(pk=delivery_id).first()
    if delivery is None:
        raise NotFound("No such delivery.")
    return delivery


def active_order_ids(courier_id: UUID) -> list[UUID]:
    """The orders the courier is delivering now (the partial unique index on active
    deliveries per courier serves this)."""
    return list(
        Delivery.objects.filter(courier_id=courier_id, status__in=ACTIVE).values_list(
            "order_id", flat=True
        )
    )


def courier_may_watch(*, order_id: UUID, courier_id: UUID) -> bool:
    """Whether the courier has (or had, once delivered) this order."""
    return Delivery.objects.filter(
        order_id=order_id, courier_id=courier_id, status__in=CURRENT
    ).exists()


def delivery_to_dict(delivery: Delivery) -> dict[str, Any]:
    """A delivery as the courier app sees it (order, store, lines and customer loaded)."""
    order = delivery.order
    store = order.store
    body = {
        "id": str(delivery.id),
        "order_id": str(order.id),
        "order_number": order.number,
        "order_status": order.status,
        "status": delivery.status,
        "store": {
            "id": str(store.id),
            "name": store.name,
            "address": store.address,
            "lat": store.lat,
            "lng": store.lng,
        },
        "delivery_address": order.delivery_address,
        "customer_name": order.customer.name,
        "note": order.note,
        "items": _bag(order.lines.all()),
        "assigned_at": format_timestamp(delivery.assigned_at),
        "picked_up_at": _timestamp(delivery.picked_up_at),
        "delivered_at": _timestamp(delivery.delivered_at),
    }
    if delivery.handoff_code is not None:
        # v1.1: that a code is needed and how many tries are left; never the code.
        body["handoff_code_required"] = True
        body["handoff_attempts_left"] = max(
            0, MAX_HANDOFF_ATTEMPTS - delivery.handoff_failed_attempts
        )
    return body


def _bag(lines: Any) -> list[dict[str, Any]]:
    """What the courier carries: each line at its quantity, or at its picked quantity once
    the picking amended the order (v1.1; lines picked 0 are not in the bag)."""
    items = []
    for line in lines:
        quantity = line.quantity if line.picked_quantity is None else line.picked_quantity
        if quantity:
            items.append({"name": line.name, "quantity": quantity})
    return items
