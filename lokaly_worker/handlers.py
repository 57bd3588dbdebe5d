"""What the worker does for each event type. Thin: load by id, call a service."""

from __future__ import annotations

import logging

from django.utils import timezone

from lokaly_core.domain.orders import OrderStatus
from lokaly_core.domain.picking import order_advance_to
from lokaly_core.domain.services import order_reserve_stock
from lokaly_core.events import (
    Envelope,
    EventPayload,
    OrderCreated,
    OrderStatusChanged,
    PickingCompleted,
    PickingStarted,
)
from lokaly_core.orders.realtime import order_group, status_changed_message
from lokaly_core.orders.uow import DjangoUnitOfWork
from lokaly_core.broadcast import get_broadcaster
from lokaly_worker.registry import handles

logger = logging.getLogger("lokaly.worker.handlers")


@handles(OrderCreated.TYPE)
def reserve_stock(envelope: Envelope, event: EventPayload) -> None:
    assert isinstance(event, OrderCreated)
    order = order_reserve_stock(
        uow=DjangoUnitOfWork(savepoint=False), clock=timezone.now, order_id=event.order_id
    )
    if order is None:
        # Events are published only after their order committed, so this worker is
        # looking at another database than the API that placed the order. Failing (and
        # so retrying, then dead-lettering) keeps the event visible instead of acking it.
        raise LookupError(
            f"order {event.order_id} is not in this worker's database; check that the worker "
            "and the APIs share DATABASE_URL, and that environments sharing a Redis use "
            "different EVENT_STREAM names"
        )
    logger.info(
        "stock reservation decided",
        extra={
            "event_id": str(envelope.event_id),
            "order_id": str(event.order_id),
            "status": order.status,
        },
    )


@handles(OrderStatusChanged.TYPE, transactional=False)
def broadcast_status_change(envelope: Envelope, event: EventPayload) -> None:
    assert isinstance(event, OrderStatusChanged)
    get_broadcaster().group_send(order_group(event.order_id), status_changed_message(event))


@handles(PickingStarted.TYPE)
def order_to_picking(envelope: Envelope, event: EventPayload) -> None:
    assert isinstance(event, PickingStarted)
    order_advance_to(
        uow=DjangoUnitOfWork(savepoint=False),
        clock=timezone.now,
        order_id=event.order_id,
        target=OrderStatus.PICKING,
    )


@handles(PickingCompleted.TYPE)
def order_to_ready(envelope: Envelope, event: EventPayload) -> None:
    assert isinstance(event, PickingCompleted)
    order_advance_to(
        uow=DjangoUnitOfWork(savepoint=False),
        clock=timezone.now,
        order_id=event.order_id,
        target=OrderStatus.READY,
    )
