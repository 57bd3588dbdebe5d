"""Read side of orders: querysets and the order's contract representation.

Both APIs and the sockets render orders through ``order_to_dict`` so an order looks
the same wherever it is returned.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from uuid import UUID

from django.db.models import Prefetch, QuerySet

from lokaly_core.domain import orders as domain
from lokaly_core.domain.errors import NotFound
from lokaly_core.events.contracts import format_timestamp
from lokaly_core.orders.models import Order, OrderLine, OrderStatusChange


def orders_with_lines() -> QuerySet[Order]:
    return Order.objects.prefetch_related(
        Prefetch("lines", queryset=OrderLine.objects.order_by("id"))
    )


def customer_orders(customer_id: UUID) -> QuerySet[Order]:
    return orders_with_lines().filter(customer_id=customer_id)


def customer_order(*, order_id: UUID, customer_id: UUID) -> Order:
    """The customer's own order; another customer's is "not found", never "forbidden"."""
    order = customer_orders(customer_id).filter(pk=order_id).first()
    if order is None:
        raise NotFound("No such order.")
    return order


def order_to_dict(order: Order) -> dict[str, Any]:
    return _render(order, order.lines.all(), order.delivery_address)


def created_order_to_dict(order: domain.Order) -> dict[str, Any]:
    """The same representation from the domain object just placed (saves a read)."""
    return _render(order, order.lines, order.delivery_address.as_dict())


def _render(
    order: Order | domain.Order, lines: Iterable[Any], address: dict[str, Any]
) -> dict[str, Any]:
    return {
        "id": str(order.id),
        "number": order.number,
        "status": str(order.status),
        "status_version": order.status_version,
        "store_id": str(order.store_id),
        "customer_id": str(order.customer_id),
        "items": [
            {
                "product_id": str(line.product_id),
                "name": line.name,
                "quantity": line.quantity,
                "unit_price_cents": line.unit_price_cents,
                "line_total_cents": line.line_total_cents,
            }
            for line in lines
        ],
        "subtotal_cents": order.subtotal_cents,
        "delivery_fee_cents": order.delivery_fee_cents,
        "total_cents": order.total_cents,
        "currency": order.currency,
        "delivery_address": address,
        "note": order.note,
        "cancel_reason": order.cancel_reason,
        "delivery": None,
        "created_at": format_timestamp(order.created_at),
        "updated_at": format_timestamp(order.updated_at),
    }


def change_to_dict(change: OrderStatusChange) -> dict[str, Any]:
    return {
        "status": change.status,
        "previous_status": change.previous_status,
        "status_version": change.status_version,
        "occurred_at": format_timestamp(change.occurred_at),
        "reason": change.reason,
    }


def order_history(
    order_id: UUID, *, after_version: int = 0, before_version: int | None = None
) -> list[dict[str, Any]]:
    """Status changes with ``after_version < status_version [< before_version]``, oldest first."""
    qs = OrderStatusChange.objects.filter(order_id=order_id, status_version__gt=after_version)
    if before_version is not None:
        qs = qs.filter(status_version__lt=before_version)
    return [change_to_dict(c) for c in qs.order_by("status_version")]
