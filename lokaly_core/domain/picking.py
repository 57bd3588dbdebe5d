"""Picking: store staff start and complete collecting an order; the worker moves the order.

The admin API records the picking and emits ``picking.started`` / ``picking.completed``;
the worker, on those events, moves the order ``confirmed -> picking -> ready`` (each move
an ``order.status_changed``), so every status change travels the same road.
"""

from __future__ import annotations

import uuid

from lokaly_core.domain.errors import InvalidTransition, NotFound
from lokaly_core.domain.history import record_status_change
from lokaly_core.domain.model import orders as o
from lokaly_core.domain.model.picking import Picking, PickingStatus
from lokaly_core.domain.ports import Clock, UnitOfWork
from lokaly_core.events import PickingCompleted, PickingStarted


def picking_start(
    *, uow: UnitOfWork, clock: Clock, order_id: uuid.UUID, staff_id: uuid.UUID | None
) -> Picking:
    """Start picking a ``confirmed`` order (once) and emit ``picking.started``."""
    with uow:
        order = uow.orders.get_for_update(order_id)
        if order is None:
            raise NotFound("No such order.")
        if order.status is not o.OrderStatus.CONFIRMED or uow.picking.get(order_id) is not None:
            raise InvalidTransition(
                f"Picking starts on a confirmed order; this one is {order.status}.",
                details={"status": str(order.status)},
            )
        now = clock()
        picking = Picking(
            order_id=order_id, status=PickingStatus.STARTED, started_at=now, started_by=staff_id
        )
        uow.picking.add(picking)
        uow.events.record(
            PickingStarted(order_id=order_id, store_id=order.store_id, staff_id=staff_id),
            aggregate_id=order_id,
            occurred_at=now,
        )
        uow.commit()
    return picking


def picking_complete(
    *, uow: UnitOfWork, clock: Clock, order_id: uuid.UUID, staff_id: uuid.UUID | None
) -> Picking:
    """Complete a started picking and emit ``picking.completed``."""
    with uow:
        order = uow.orders.get_for_update(order_id)
        if order is None:
            raise NotFound("No such order.")
        picking = uow.picking.get(order_id)
        if picking is None or picking.status is not PickingStatus.STARTED:
            raise InvalidTransition(
                "Picking must be started (and not yet completed) to complete it.",
                details={"picking": str(picking.status) if picking else None},
            )
        if order.status not in {o.OrderStatus.CONFIRMED, o.OrderStatus.PICKING}:
            raise InvalidTransition(
                f"An order that is {order.status} cannot finish picking.",
                details={"status": str(order.status)},
            )
        now = clock()
        picking.status = PickingStatus.COMPLETED
        picking.completed_at = now
        picking.completed_by = staff_id
        uow.picking.save(picking)
        uow.events.record(
            PickingCompleted(order_id=order_id, store_id=order.store_id, staff_id=staff_id),
            aggregate_id=order_id,
            occurred_at=now,
        )
        uow.commit()
    return picking


_ROAD = [o.OrderStatus.CONFIRMED, o.OrderStatus.PICKING, o.OrderStatus.READY]


def order_advance_to(
    *, uow: UnitOfWork, clock: Clock, order_id: uuid.UUID, target: o.OrderStatus
) -> o.Order | None:
    """Move an order along confirmed -> picking -> ready up to ``target`` (worker side).

    Idempotent: an order already at or past ``target``, or cancelled, is left alone; an
    order one step behind (``picking.completed`` handled before ``picking.started``) takes
    both steps, each with its own ``order.status_changed``.
    """
    with uow:
        order = uow.orders.get_for_update(order_id)
        if order is None or order.status not in _ROAD[: _ROAD.index(target)]:
            uow.commit()  # nothing changed: a no-op commit, never a doomed caller
            return order
        now = clock()
        while order.status is not target:
            step = _ROAD[_ROAD.index(order.status) + 1]
            change = order.move_to(step, actor=o.Actor.SYSTEM, at=now)
            record_status_change(uow, order, change)
        uow.orders.save(order)
        uow.commit()
    return order
