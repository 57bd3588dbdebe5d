"""Recording an order's status change as its ``order.status_changed`` event."""

from __future__ import annotations

from lokaly_core.domain.model import orders as o
from lokaly_core.domain.ports import UnitOfWork
from lokaly_core.events import OrderStatusChanged


def record_status_change(uow: UnitOfWork, order: o.Order, change: o.StatusChange) -> None:
    uow.events.record(
        OrderStatusChanged(
            order_id=order.id,
            customer_id=order.customer_id,
            status=change.status,
            previous_status=change.previous_status,
            status_version=change.status_version,
            occurred_at=change.occurred_at,
            reason=change.reason,
        ),
        aggregate_id=order.id,
        occurred_at=change.occurred_at,
    )
