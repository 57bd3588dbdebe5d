"""Picking: store staff start and complete collecting an order; the worker moves the order.

The admin API records the picking and emits ``picking.started`` / ``picking.completed``;
the worker, on those events, moves the order ``confirmed -> picking -> ready`` (each move
an ``order.status_changed``), so every status change travels the same road.
"""

from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime

from lokaly_core.domain.errors import InvalidTransition, NotFound
from lokaly_core.domain.history import record_status_change
from lokaly_core.domain.model import orders as o
from lokaly_core.domain.model.picking import (
    Picking,
    PickingLine,
    PickingStatus,
    SubstitutionStatus,
)
from lokaly_core.domain.ports import Clock, UnitOfWork
from lokaly_core.domain.services import cancel_reserved
from lokaly_core.domain.substitutions import end_proposal
from lokaly_core.events import (
    AmendedLine,
    InventoryReleased,
    OrderAmended,
    PickingCompleted,
    PickingStarted,
    StockLine,
)


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
    """Complete a started picking and emit ``picking.completed``.

    v1.1: every proposal must be answered first (409 while one is open and not yet due;
    a due one is expired here). The order is then amended to what was picked (lines
    never recorded count as picked in full): ``order.amended`` and the release of the
    units not picked, before ``picking.completed``; an order with nothing left is
    cancelled (``nothing_picked``). A picking that changed nothing is the v1 one.
    """
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
        records = {line.product_id: line for line in uow.picking.lines(order_id)}
        _close_proposals(uow, order, records, now=now)
        picking.status = PickingStatus.COMPLETED
        picking.completed_at = now
        picking.completed_by = staff_id
        uow.picking.save(picking)
        amendment = _amendment(order, records)
        if amendment is not None and not any(line.delivered_quantity for line in amendment):
            _record_completed(uow, order, staff_id, now=now, amended=False)
            cancel_reserved(uow, order, actor=o.Actor.ADMIN, reason=NOTHING_PICKED, now=now)
        elif amendment is not None:
            _amend(uow, order, amendment, now=now)
            _record_completed(uow, order, staff_id, now=now, amended=True)
        else:
            _record_completed(uow, order, staff_id, now=now, amended=False)
        uow.commit()
    return picking


NOTHING_PICKED = "nothing_picked"
NOT_PICKED = "not_picked"  # the reason of the release of units not picked


def _record_completed(
    uow: UnitOfWork, order: o.Order, staff_id: uuid.UUID | None, *, now: datetime, amended: bool
) -> None:
    uow.events.record(
        PickingCompleted(
            order_id=order.id, store_id=order.store_id, staff_id=staff_id, amended=amended
        ),
        aggregate_id=order.id,
        occurred_at=now,
    )


def _close_proposals(
    uow: UnitOfWork, order: o.Order, records: dict[uuid.UUID, PickingLine], *, now: datetime
) -> None:
    """Expire the due proposals; 409 while one is still open and not due."""
    waiting = sorted(
        str(p)
        for p, line in records.items()
        if line.substitute is not None
        and line.substitute.is_open()
        and not line.substitute.is_due(now)
    )
    if waiting:
        raise InvalidTransition(
            "Every substitute proposal must be answered (or expire) before the picking completes.",
            details={"waiting_for": waiting},
        )
    for line in records.values():
        if line.substitute is not None and line.substitute.is_due(now):
            end_proposal(uow, order, line, SubstitutionStatus.EXPIRED, now=now)


def _amendment(order: o.Order, records: dict[uuid.UUID, PickingLine]) -> list[o.Line] | None:
    """The order's lines as picked (each with ``picked_quantity``, then the accepted
    substitutes), or None when the picking changed nothing."""
    lines: list[o.Line] = []
    added: list[o.Line] = []
    changed = False
    for line in order.lines:
        record = records.get(line.product_id)
        picked = line.quantity if record is None else record.picked_quantity
        changed = changed or picked != line.quantity
        lines.append(dataclasses.replace(line, picked_quantity=picked))
        sub = record.substitute if record is not None else None
        if sub is not None and sub.status is SubstitutionStatus.ACCEPTED:
            changed = True
            added.append(
                o.Line(
                    product_id=sub.product_id,
                    name=sub.name,
                    quantity=sub.quantity,
                    unit_price_cents=sub.unit_price_cents,
                    picked_quantity=sub.quantity,
                    substitute_for=line.product_id,
                )
            )
    return [*lines, *added] if changed else None


def _amend(uow: UnitOfWork, order: o.Order, lines: list[o.Line], *, now: datetime) -> None:
    """The order becomes what is delivered: units not picked are released, the accepted
    substitutes (held until now) are its lines, totals follow; ``order.amended``."""
    previous_total = order.total_cents
    before = {line.product_id: line for line in order.lines}
    not_picked = sorted(
        (
            (line.product_id, line.quantity - line.delivered_quantity)
            for line in lines
            if line.substitute_for is None and line.delivered_quantity < line.quantity
        ),
        key=lambda p: str(p[0]),
    )
    order.lines = lines
    order.substitutes_held = []
    order.updated_at = now
    if not_picked:
        uow.stock.release(order.store_id, not_picked)
        uow.events.record(
            InventoryReleased(
                order_id=order.id,
                store_id=order.store_id,
                lines=tuple(StockLine(product_id=p, quantity=q) for p, q in not_picked),
                reason=NOT_PICKED,
            ),
            aggregate_id=order.id,
            occurred_at=now,
        )
    uow.orders.amend(order)
    changed = [
        line
        for line in lines
        if line.substitute_for is not None
        or line.delivered_quantity != before[line.product_id].quantity
    ]
    uow.events.record(
        OrderAmended(
            order_id=order.id,
            customer_id=order.customer_id,
            previous_total_cents=previous_total,
            total_cents=order.total_cents,
            subtotal_cents=order.subtotal_cents,
            currency=order.currency,
            lines=tuple(
                AmendedLine(
                    product_id=line.product_id,
                    name=line.name,
                    quantity=line.quantity,
                    picked_quantity=line.delivered_quantity,
                    unit_price_cents=line.unit_price_cents,
                    substitute_for=line.substitute_for,
                )
                for line in changed
            ),
        ),
        aggregate_id=order.id,
        occurred_at=now,
    )


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
