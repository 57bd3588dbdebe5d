"""Order services: place, reserve stock for, and cancel an order.

Each one validates, then locks, then changes, then records its events, all inside one
unit of work, so an order and the events that report it commit together or not at all.
"""

from __future__ import annotations

import math
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from lokaly_core.domain.delivery import release_delivery
from lokaly_core.domain.errors import NotFound, StoreClosed, TooManyOpenOrders, ValidationFailed
from lokaly_core.domain.geo import distance_m
from lokaly_core.domain.history import record_status_change
from lokaly_core.domain.model import orders as o
from lokaly_core.domain.model.catalog import StoreInfo
from lokaly_core.domain.ports import Clock, UnitOfWork
from lokaly_core.events import (
    InventoryReleased,
    InventoryReserved,
    OrderCancelled,
    OrderCreated,
    StockLine,
)
from lokaly_core.events.contracts import format_timestamp


@dataclass(frozen=True, slots=True)
class ItemRequest:
    product_id: uuid.UUID
    quantity: int


@dataclass(frozen=True, slots=True)
class PlaceOrder:
    customer_id: uuid.UUID
    store_id: uuid.UUID
    items: Sequence[ItemRequest]
    delivery_address: o.Address
    note: str = ""


def _validate_shape(cmd: PlaceOrder) -> None:
    errors: dict[str, list[str]] = defaultdict(list)
    if not 1 <= len(cmd.items) <= o.MAX_ITEMS:
        errors["items"].append(f"An order has 1 to {o.MAX_ITEMS} items.")
    seen: set[uuid.UUID] = set()
    for index, item in enumerate(cmd.items):
        if item.product_id in seen:
            errors[f"items.{index}.product_id"].append("Each product may appear only once.")
        seen.add(item.product_id)
        if not 1 <= item.quantity <= o.MAX_QUANTITY:
            errors[f"items.{index}.quantity"].append(
                f"Quantity must be an integer from 1 to {o.MAX_QUANTITY}."
            )
    address = cmd.delivery_address
    if not (math.isfinite(address.lat) and -90 <= address.lat <= 90):
        errors["delivery_address.lat"].append("Latitude must be between -90 and 90.")
    if not (math.isfinite(address.lng) and -180 <= address.lng <= 180):
        errors["delivery_address.lng"].append("Longitude must be between -180 and 180.")
    for name in ("line1", "city", "postal_code"):
        if not getattr(address, name).strip():
            errors[f"delivery_address.{name}"].append("This field may not be blank.")
    if len(cmd.note) > o.MAX_NOTE_LENGTH:
        errors["note"].append(f"A note has at most {o.MAX_NOTE_LENGTH} characters.")
    if errors:
        raise ValidationFailed(errors)


def place_order(
    *,
    uow: UnitOfWork,
    clock: Clock,
    command: PlaceOrder,
    delivery_fee_cents: int,
    max_open_orders: int | None = None,
) -> o.Order:
    """Create a ``pending`` order at today's prices and emit ``order.created``.

    The store must be open now and deliver to the address; the customer may hold at most
    ``max_open_orders`` orders neither delivered nor cancelled (None: no limit).
    """
    _validate_shape(command)
    with uow:
        store, offers = uow.catalog.get_store_offers(
            command.store_id,
            [i.product_id for i in command.items],
            customer_id=command.customer_id if max_open_orders is not None else None,
        )
        if store is None or not store.is_active:
            raise ValidationFailed({"store_id": ["No active store has this id."]})
        now = clock()
        _check_store_rules(store, command, now=now, max_open_orders=max_open_orders)
        errors: dict[str, list[str]] = {}
        for index, item in enumerate(command.items):
            offer = offers.get(item.product_id)
            if offer is None or not offer.is_active:
                errors[f"items.{index}.product_id"] = ["This store does not sell this product."]
        if errors:
            raise ValidationFailed(errors)
        currencies = {offers[i.product_id].currency for i in command.items}
        if len(currencies) > 1:
            raise ValidationFailed({"items": ["All products of an order share one currency."]})
        order = o.Order(
            id=uuid.uuid4(),
            number=uow.orders.next_number(),
            customer_id=command.customer_id,
            store_id=command.store_id,
            status=o.OrderStatus.PENDING,
            status_version=1,
            lines=[
                o.Line(
                    product_id=item.product_id,
                    name=offers[item.product_id].name,
                    quantity=item.quantity,
                    unit_price_cents=offers[item.product_id].price_cents,
                )
                for item in command.items
            ],
            delivery_fee_cents=delivery_fee_cents,
            currency=currencies.pop(),
            delivery_address=command.delivery_address,
            note=command.note,
            created_at=now,
            updated_at=now,
        )
        order.pending_changes.append(
            o.StatusChange(
                status=o.OrderStatus.PENDING,
                previous_status=None,
                status_version=1,
                occurred_at=now,
                reason=None,
            )
        )
        uow.orders.add(order)
        uow.events.record(
            OrderCreated(
                order_id=order.id,
                number=order.number,
                customer_id=order.customer_id,
                store_id=order.store_id,
                lines=_event_lines(order),
                total_cents=order.total_cents,
                currency=order.currency,
            ),
            aggregate_id=order.id,
            occurred_at=now,
        )
        uow.commit()
    return order


def _check_store_rules(
    store: StoreInfo, command: PlaceOrder, *, now: datetime, max_open_orders: int | None
) -> None:
    """v1.1's refusals: the store closed now, the address outside its delivery area, the
    customer's open orders at the limit. A v1 store (no hours, no radius) passes."""
    if not store.hours.is_open(now):
        opening = store.hours.next_opening_at(now)
        raise StoreClosed(
            details={"next_opening_at": format_timestamp(opening) if opening else None}
        )
    if store.delivery_radius_m is not None:
        address = command.delivery_address
        distance = distance_m(store.lat, store.lng, address.lat, address.lng)
        if distance > store.delivery_radius_m:
            raise ValidationFailed(
                {
                    "delivery_address": [
                        f"The address is {round(distance)} m from the store, which delivers "
                        f"within {store.delivery_radius_m} m."
                    ]
                },
                extra={"distance_m": round(distance), "delivery_radius_m": store.delivery_radius_m},
            )
    if max_open_orders is not None and store.customer_open_orders >= max_open_orders:
        raise TooManyOpenOrders(
            f"You have {store.customer_open_orders} orders on their way, the most at once; "
            "wait until one is delivered or cancelled.",
            details={"open_orders": store.customer_open_orders, "max_open_orders": max_open_orders},
        )


def order_reserve_stock(*, uow: UnitOfWork, clock: Clock, order_id: uuid.UUID) -> o.Order | None:
    """Reserve a pending order's stock, all lines or none: confirm it, or cancel it out of stock.

    An order that is no longer pending is left alone (the event was already handled, or
    the customer cancelled first). Returns the order, or None when it does not exist.
    """
    with uow:
        order = uow.orders.get_for_update(order_id)
        if order is None or order.status is not o.OrderStatus.PENDING:
            uow.commit()  # nothing changed: a no-op commit, never a doomed caller
            return order
        now = clock()
        lines = order.stock_lines()
        short = uow.stock.try_reserve(order.store_id, lines)
        if short:
            _cancel(uow, order, actor=o.Actor.SYSTEM, reason=o.OUT_OF_STOCK, now=now)
        else:
            order.stock_state = o.StockState.RESERVED
            uow.events.record(
                InventoryReserved(
                    order_id=order.id, store_id=order.store_id, lines=_event_lines(order)
                ),
                aggregate_id=order.id,
                occurred_at=now,
            )
            change = order.move_to(o.OrderStatus.CONFIRMED, actor=o.Actor.SYSTEM, at=now)
            record_status_change(uow, order, change)
            uow.orders.save(order)
        uow.commit()
    return order


def orders_reserve_stock(
    *, uow: UnitOfWork, clock: Clock, order_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, o.Order | None]:
    """``order_reserve_stock`` for several orders at once, in the order given (the
    stream's): an earlier order gets the last unit; each order all lines or none.

    The orders are locked in id order, then every stock row they need in (store, product)
    order, so concurrent batches and single reservations never deadlock. A pending order
    holds no stock and no delivery, so one cancelled out of stock releases nothing.
    Returns each id's order (None when it does not exist).
    """
    with uow:
        orders = uow.orders.get_many_for_update(order_ids)
        pending = [
            orders[i]
            for i in dict.fromkeys(order_ids)
            if i in orders and orders[i].status is o.OrderStatus.PENDING
        ]
        wanted = sorted({(order.store_id, p) for order in pending for p, _ in order.stock_lines()})
        available = uow.stock.lock_available(wanted)
        taken: dict[tuple[uuid.UUID, uuid.UUID], int] = defaultdict(int)
        now = clock()
        for order in pending:
            lines = [((order.store_id, p), q) for p, q in order.stock_lines()]
            if all(available.get(key, 0) - taken[key] >= q for key, q in lines):
                for key, q in lines:
                    taken[key] += q
                _confirm_reserved(uow, order, now=now)
            else:
                _cancel_pending_out_of_stock(uow, order, now=now)
        if taken:
            uow.stock.reserve_many([(s, p, q) for (s, p), q in taken.items()])
        if pending:
            uow.orders.save_many(pending)
        uow.commit()
    return {i: orders.get(i) for i in order_ids}


def _confirm_reserved(uow: UnitOfWork, order: o.Order, *, now: datetime) -> None:
    order.stock_state = o.StockState.RESERVED
    uow.events.record(
        InventoryReserved(order_id=order.id, store_id=order.store_id, lines=_event_lines(order)),
        aggregate_id=order.id,
        occurred_at=now,
    )
    change = order.move_to(o.OrderStatus.CONFIRMED, actor=o.Actor.SYSTEM, at=now)
    record_status_change(uow, order, change)


def _cancel_pending_out_of_stock(uow: UnitOfWork, order: o.Order, *, now: datetime) -> None:
    """``_cancel`` for a pending order: nothing reserved to release, no delivery yet."""
    change = order.move_to(
        o.OrderStatus.CANCELLED, actor=o.Actor.SYSTEM, at=now, reason=o.OUT_OF_STOCK
    )
    record_status_change(uow, order, change)
    uow.events.record(
        OrderCancelled(
            order_id=order.id,
            reason=o.OUT_OF_STOCK,
            cancelled_by=str(o.Actor.SYSTEM),
            previous_status=o.OrderStatus.PENDING,
        ),
        aggregate_id=order.id,
        occurred_at=now,
    )


def order_cancel(
    *,
    uow: UnitOfWork,
    clock: Clock,
    order_id: uuid.UUID,
    actor: o.Actor,
    reason: str,
    customer_id: uuid.UUID | None = None,
) -> o.Order:
    """Cancel an order and release what it reserved. A customer may cancel only their own."""
    with uow:
        order = uow.orders.get_for_update(order_id)
        if order is None or (customer_id is not None and order.customer_id != customer_id):
            raise NotFound("No such order.")
        _cancel(uow, order, actor=actor, reason=reason, now=clock())
        uow.commit()
    return order


def cancel_reserved(
    uow: UnitOfWork, order: o.Order, *, actor: o.Actor, reason: str, now: datetime
) -> None:
    """Cancel a locked order, releasing exactly what it holds (``Order.stock_lines``) and
    its delivery; the caller commits (picking's ``nothing_picked``)."""
    _cancel(uow, order, actor=actor, reason=reason, now=now)


def _cancel(uow: UnitOfWork, order: o.Order, *, actor: o.Actor, reason: str, now: datetime) -> None:
    previous = order.status
    change = order.move_to(o.OrderStatus.CANCELLED, actor=actor, at=now, reason=reason)
    if order.stock_state is o.StockState.RESERVED:
        uow.stock.release(order.store_id, order.stock_lines())
        order.stock_state = o.StockState.RELEASED
        uow.events.record(
            InventoryReleased(
                order_id=order.id,
                store_id=order.store_id,
                lines=_event_lines(order),
                reason=reason,
            ),
            aggregate_id=order.id,
            occurred_at=now,
        )
    release_delivery(uow, order, now=now)
    record_status_change(uow, order, change)
    uow.events.record(
        OrderCancelled(
            order_id=order.id, reason=reason, cancelled_by=str(actor), previous_status=previous
        ),
        aggregate_id=order.id,
        occurred_at=now,
    )
    uow.orders.save(order)


def _event_lines(order: o.Order) -> tuple[StockLine, ...]:
    return tuple(StockLine(product_id=p, quantity=q) for p, q in order.stock_lines())
