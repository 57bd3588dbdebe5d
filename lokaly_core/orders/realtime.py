"""The live-tracking wire format, shared by the worker (sender) and the public API (sockets)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from lokaly_core.events import OrderStatusChanged
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
