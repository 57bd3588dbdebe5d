"""The live-tracking wire format, shared by the worker (sender) and the public API (sockets)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from lokaly_core.events import OrderStatusChanged, OrderSubstitutionProposed
from lokaly_core.events.contracts import format_timestamp


def order_group(order_id: UUID | str) -> str:
    """The Channels group of everyone watching one order."""
    return f"order.{order_id}"


def status_changed_message(event: OrderStatusChanged) -> dict[str, Any]:
    return {
        "type": "order.status_changed",
        "order_id": str(event.order_id),
        "status": event.status,
        "previous_status": event.previous_status,
        "status_version": event.status_version,
        "occurred_at": format_timestamp(event.occurred_at),
        "reason": event.reason,
    }


def substitution_proposed_message(event: OrderSubstitutionProposed) -> dict[str, Any]:
    """v1.1: a substitute offered to the customer (sent to the order's customer only)."""
    return {
        "type": "order.substitution_proposed",
        "order_id": str(event.order_id),
        "product_id": str(event.product_id),
        "substitute": {
            "product_id": str(event.substitute_product_id),
            "name": event.substitute_name,
            "quantity": event.quantity,
            "unit_price_cents": event.unit_price_cents,
        },
        "expires_at": format_timestamp(event.expires_at),
    }


def order_amended_message(order: dict[str, Any]) -> dict[str, Any]:
    """v1.1: the order as the picking amended it (``order`` rendered by the selectors)."""
    return {
        "type": "order.amended",
        "order_id": order["id"],
        "items": order["items"],
        "subtotal_cents": order["subtotal_cents"],
        "total_cents": order["total_cents"],
    }
