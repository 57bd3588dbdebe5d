"""Short picks and substitutions (v1.1): staff record what they found of each ordered
line, perhaps proposing a substitute for the missing units; the customer accepts or
rejects it before it expires.

The stock invariant: the units an order holds reserved are exactly ``Order.stock_lines()``
(its lines, plus the substitutes proposed or accepted while the picking is started).
A proposal reserves its substitute's units under the same rules as an order (the stock
row locked, never below 0 available); rejecting, expiring or replacing it releases them.
Every change locks the order row first, so the customer's answer, the worker's expiry
and staff's records of one order happen one after the other: exactly one ends a proposal.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from lokaly_core.domain.errors import (
    InsufficientStock,
    InvalidTransition,
    NotFound,
    ValidationFailed,
)
from lokaly_core.domain.model import orders as o
from lokaly_core.domain.model import picking as pk
from lokaly_core.domain.ports import Clock, UnitOfWork
from lokaly_core.events import OrderSubstitutionAnswered, OrderSubstitutionProposed
from lokaly_core.events.contracts import format_timestamp

# The order statuses in which its picking may record lines and proposals may be answered.
PICKABLE = frozenset({o.OrderStatus.CONFIRMED, o.OrderStatus.PICKING})


@dataclass(frozen=True, slots=True)
class SubstituteRequest:
    product_id: uuid.UUID
    quantity: int


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _picking_open(uow: UnitOfWork, order: o.Order) -> pk.Picking:
    picking = uow.picking.get(order.id)
    if picking is None or picking.status is not pk.PickingStatus.STARTED:
        raise InvalidTransition(
            "Lines are recorded while the order's picking is started (and not completed).",
            details={"picking": str(picking.status) if picking else None},
        )
    if order.status not in PICKABLE:
        raise InvalidTransition(
            f"An order that is {order.status} is not being picked.",
            details={"status": str(order.status)},
        )
    return picking


def _validate_line(
    order: o.Order, line: o.Line, picked_quantity: int, substitute: SubstituteRequest | None
) -> None:
    errors: dict[str, list[str]] = {}
    if not _is_count(picked_quantity) or not 0 <= picked_quantity <= line.quantity:
        errors["picked_quantity"] = [f"A whole number from 0 to {line.quantity} (ordered)."]
    elif substitute is not None and picked_quantity == line.quantity:
        errors["substitute"] = ["The line was picked in full: there is nothing to substitute."]
    if substitute is not None:
        if not _is_count(substitute.quantity) or not 1 <= substitute.quantity <= o.MAX_QUANTITY:
            errors["substitute.quantity"] = [f"A whole number from 1 to {o.MAX_QUANTITY}."]
        if any(other.product_id == substitute.product_id for other in order.lines):
            errors["substitute.product_id"] = ["This product is already on the order."]
    if errors:
        raise ValidationFailed(errors)


def picking_record_line(
    *,
    uow: UnitOfWork,
    clock: Clock,
    order_id: uuid.UUID,
    product_id: uuid.UUID,
    picked_quantity: int,
    substitute: SubstituteRequest | None,
    staff_id: uuid.UUID | None,
    timeout: timedelta,
) -> pk.PickingLine:
    """Record what staff found of one ordered product, replacing an earlier record (and
    releasing what its proposal held); a substitute's units are reserved and it is
    offered to the customer until ``timeout`` from now (``order.substitution_proposed``).

    Locks the order row, then the stock rows of the old and new substitute in product
    order (as every reservation does, so none waits on another in a cycle).
    """
    with uow:
        order = uow.orders.get_for_update(order_id)
        if order is None:
            raise NotFound("No such order.")
        _picking_open(uow, order)
        line = next(
            (x for x in order.lines if x.product_id == product_id and x.substitute_for is None),
            None,
        )
        if line is None:
            raise NotFound("The order has no line for this product.")
        _validate_line(order, line, picked_quantity, substitute)
        offer_name, offer_price, timezone = "", 0, "UTC"
        if substitute is not None:
            offer_name, offer_price, timezone = _substitute_offer(uow, order, substitute)
        now = clock()
        previous = next(
            (x for x in uow.picking.lines(order_id) if x.product_id == product_id), None
        )
        held = previous.substitute if previous and previous.substitute else None
        held = held if held is not None and held.holds_stock else None
        _move_reservation(uow, order, held, substitute)
        record = pk.PickingLine(
            order_id=order_id,
            product_id=product_id,
            ordered_quantity=line.quantity,
            picked_quantity=picked_quantity,
            recorded_at=now,
            recorded_by=staff_id,
        )
        if substitute is not None:
            record.substitute = pk.Substitution(
                product_id=substitute.product_id,
                name=offer_name,
                quantity=substitute.quantity,
                unit_price_cents=offer_price,
                status=pk.SubstitutionStatus.PROPOSED,
                expires_at=now + timeout,
            )
            uow.events.record(
                OrderSubstitutionProposed(
                    order_id=order.id,
                    customer_id=order.customer_id,
                    store_id=order.store_id,
                    product_id=product_id,
                    product_name=line.name,
                    substitute_product_id=substitute.product_id,
                    substitute_name=offer_name,
                    quantity=substitute.quantity,
                    unit_price_cents=offer_price,
                    expires_at=record.substitute.expires_at,
                    timezone=timezone,
                    staff_id=staff_id,
                ),
                aggregate_id=order.id,
                occurred_at=now,
            )
        uow.picking.save_line(record)
        uow.commit()
    return record


def _substitute_offer(
    uow: UnitOfWork, order: o.Order, substitute: SubstituteRequest
) -> tuple[str, int, str]:
    """The substitute as the store sells it (name, price, the store's time zone): an
    active product the store carries, in the order's currency; else 400 on ``substitute``."""
    store, offers = uow.catalog.get_store_offers(order.store_id, [substitute.product_id])
    offer = offers.get(substitute.product_id)
    if offer is None or not offer.is_active:
        raise ValidationFailed(
            {"substitute.product_id": ["This store does not sell this product."]}
        )
    if offer.currency != order.currency:
        raise ValidationFailed(
            {"substitute.product_id": [f"The order is in {order.currency}; this is not."]}
        )
    timezone = str(store.hours.timezone) if store is not None else "UTC"
    return offer.name, offer.price_cents, timezone


def _move_reservation(
    uow: UnitOfWork,
    order: o.Order,
    held: pk.Substitution | None,
    wanted: SubstituteRequest | None,
) -> None:
    """Release what the earlier proposal ``held``, reserve what ``wanted`` needs: all of
    it or nothing (409 ``insufficient_stock``), the rows locked in product order."""
    products = {p.product_id for p in (held, wanted) if p is not None}
    if not products:
        return
    keys = sorted((order.store_id, p) for p in products)
    available = uow.stock.lock_available(keys)
    if wanted is not None:
        can_use = available.get((order.store_id, wanted.product_id), 0)
        if held is not None and held.product_id == wanted.product_id:
            can_use += held.quantity
        if can_use < wanted.quantity:
            raise InsufficientStock(
                "The store does not have that many of the substitute available.",
                details={
                    "product_id": str(wanted.product_id),
                    "available": max(can_use, 0),
                    "requested": wanted.quantity,
                },
            )
    if held is not None:
        uow.stock.release(order.store_id, [(held.product_id, held.quantity)])
        _forget_held(order, held)
    if wanted is not None:
        uow.stock.reserve_many([(order.store_id, wanted.product_id, wanted.quantity)])
        order.substitutes_held.append((wanted.product_id, wanted.quantity))


def _forget_held(order: o.Order, substitute: pk.Substitution) -> None:
    pair = (substitute.product_id, substitute.quantity)
    if pair in order.substitutes_held:
        order.substitutes_held.remove(pair)


def end_proposal(
    uow: UnitOfWork,
    order: o.Order,
    line: pk.PickingLine,
    status: pk.SubstitutionStatus,
    *,
    now: datetime,
) -> None:
    """End ``line``'s open proposal as ``status``; a rejected or expired one releases its
    units while the order still holds them (a cancelled order released them already).
    The caller holds the order's lock and commits."""
    substitute = line.substitute
    if substitute is None or not substitute.is_open():
        raise InvalidTransition("No substitute is waiting for an answer on this line.")
    released = 0
    if (
        status is not pk.SubstitutionStatus.ACCEPTED
        and order.stock_state is o.StockState.RESERVED
        and order.status in PICKABLE
    ):
        uow.stock.release(order.store_id, [(substitute.product_id, substitute.quantity)])
        _forget_held(order, substitute)
        released = substitute.quantity
    substitute.status = status
    substitute.answered_at = now
    uow.picking.save_line(line)
    uow.events.record(
        OrderSubstitutionAnswered(
            order_id=order.id,
            customer_id=order.customer_id,
            product_id=line.product_id,
            substitute_product_id=substitute.product_id,
            accepted=status is pk.SubstitutionStatus.ACCEPTED,
            status=str(status),
            released_quantity=released,
        ),
        aggregate_id=order.id,
        occurred_at=now,
    )


def substitution_answer(
    *,
    uow: UnitOfWork,
    clock: Clock,
    order_id: uuid.UUID,
    product_id: uuid.UUID,
    customer_id: uuid.UUID,
    accept: bool,
) -> pk.Substitution:
    """The customer accepts or rejects the substitute proposed for ``product_id``.

    Only the order's customer (anyone else: not found). A proposal that is not open, or
    an order no longer being picked, is 409 ``invalid_transition``; so is one past its
    expiry, which is then expired here (its units released) and that committed before
    the error is raised, whether or not the worker got to it first.
    """
    with uow:
        order = uow.orders.get_for_update(order_id)
        if order is None or order.customer_id != customer_id:
            raise NotFound("No such order.")
        line = next((x for x in uow.picking.lines(order_id) if x.product_id == product_id), None)
        substitute = line.substitute if line is not None else None
        if line is None or substitute is None or not substitute.is_open():
            raise InvalidTransition(
                "No substitute for this product is waiting for your answer.",
                details={"status": str(substitute.status) if substitute else None},
            )
        if order.status not in PICKABLE:
            raise InvalidTransition(
                f"An order that is {order.status} takes no answers.",
                details={"status": str(order.status)},
            )
        now = clock()
        expired = substitute.is_due(now)
        if expired:
            status = pk.SubstitutionStatus.EXPIRED
        elif accept:
            status = pk.SubstitutionStatus.ACCEPTED
        else:
            status = pk.SubstitutionStatus.REJECTED
        end_proposal(uow, order, line, status, now=now)
        uow.commit()
    if expired:
        raise InvalidTransition(
            "The proposal expired; the substitute will not be added.",
            details={"status": str(status), "expires_at": format_timestamp(substitute.expires_at)},
        )
    return substitute


def substitution_expire(
    *, uow: UnitOfWork, clock: Clock, order_id: uuid.UUID, product_id: uuid.UUID
) -> bool:
    """Expire the proposal on (order, product) if it is still open and due (the worker's
    periodic job); True when this call expired it."""
    with uow:
        order = uow.orders.get_for_update(order_id)
        line = None
        if order is not None:
            line = next(
                (x for x in uow.picking.lines(order_id) if x.product_id == product_id), None
            )
        now = clock()
        if order is None or line is None or line.substitute is None:
            uow.commit()  # nothing changed: a no-op commit
            return False
        if not line.substitute.is_due(now):
            uow.commit()
            return False
        end_proposal(uow, order, line, pk.SubstitutionStatus.EXPIRED, now=now)
        uow.commit()
    return True


def substitutions_expire_due(*, new_uow: Callable[[], UnitOfWork], clock: Clock, limit: int) -> int:
    """Expire up to ``limit`` due proposals, oldest first, each in a unit of work of its
    own (one order locked at a time); returns how many this call expired. Safe beside
    the customer's answers and other workers: each is looked at again under its lock."""
    uow = new_uow()
    with uow:
        due = uow.picking.due_proposals(clock(), limit)
        uow.commit()
    return sum(
        substitution_expire(uow=new_uow(), clock=clock, order_id=order_id, product_id=product_id)
        for order_id, product_id in due
    )
