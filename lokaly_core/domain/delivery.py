"""Delivery: couriers' shifts, dispatch (who takes which order), pickup, drop-off, decline.

The rules (docs/contract.md, "Order status machine"; docs/api.md, dispatch):
- a ``confirmed`` order is assigned to an online, active courier with no active delivery
  within ``DispatchPolicy.radius_m`` of the store (great-circle distance from the
  courier's last location; a courier with no known location is not considered), the
  nearest, ties to whoever has waited longest; couriers who declined this order less than
  ``decline_cooldown_s`` ago come last (so they get it again only when nobody else in
  range is free);
- when nobody is free the order waits in the dispatch queue and is tried again with
  exponential backoff, and at once when a courier becomes available
  (``courier.available``: online, delivered, declined, or released by a cancellation);
  the same when couriers are free but none in range (``OUT_OF_RANGE``);
- pickup needs the order ``ready``: the order goes ``out_for_delivery`` and its stock
  reservation is consumed; complete: the order is ``delivered`` and the courier is free;
- decline (before pickup only) frees the courier and puts the order back in the queue;
- proof of delivery (v1.1, ``domain/handoff.py``): at a store that requires a hand-off
  code, pickup gives the delivery a code and complete needs it; staff can complete a
  picked-up delivery themselves (``delivery_complete_by_admin``), with a reason.
- a courier who goes offline or is deactivated loses an assigned delivery not yet picked
  up (``delivery.declined`` with reason ``courier_offline`` / ``courier_deactivated``);
  the order is queued due now and the worker dispatches it at once.

Every change happens under the order's row lock (taken first, always), so two workers
never assign one order twice; a courier is claimed with a row lock that skips couriers
another transaction holds and re-checks that the courier is still free, so two orders
never get the same courier.
"""

from __future__ import annotations

import dataclasses
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from lokaly_core.domain.backoff import backoff_ms
from lokaly_core.domain.errors import DomainError, InvalidTransition, NotFound, ValidationFailed
from lokaly_core.domain.geo import distance_m
from lokaly_core.domain.handoff import handoff_verify, new_handoff_code
from lokaly_core.domain.history import record_status_change
from lokaly_core.domain.model import orders as o
from lokaly_core.domain.model.delivery import (
    DISPATCHABLE,
    Candidate,
    DeclineReason,
    Delivery,
    DeliveryStatus,
)
from lokaly_core.domain.ports import Clock, UnitOfWork
from lokaly_core.events import (
    CourierAvailable,
    DeliveryAssigned,
    DeliveryCompleted,
    DeliveryCompletedByAdmin,
    DeliveryDeclined,
    DeliveryPickedUp,
)


@dataclass(frozen=True, slots=True)
class DispatchPolicy:
    """The settings' defaults: ``DISPATCH_RETRY_BASE_MS``, ``DISPATCH_RETRY_MAX_MS``,
    ``DISPATCH_RADIUS_M``, ``DECLINE_COOLDOWN_SECONDS``."""

    retry_base_ms: int = 2_000
    retry_max_ms: int = 60_000
    radius_m: float = 5_000
    decline_cooldown_s: float = 600

    def next_attempt(self, order_id: uuid.UUID, attempts: int, now: datetime) -> datetime:
        """Exponential backoff with deterministic jitter (50-100 % of the capped delay)."""
        delay = backoff_ms(
            attempts, f"{order_id}:{attempts}", base_ms=self.retry_base_ms, max_ms=self.retry_max_ms
        )
        return now + timedelta(milliseconds=delay)


def distance_km(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    """Great-circle distance in kilometres: ``geo.distance_m``, the one definition."""
    return distance_m(lat1, lng1, lat2, lng2) / 1000


def rank_candidates(
    store_lat: float, store_lng: float, candidates: Sequence[Candidate]
) -> list[Candidate]:
    """Best first: not declined this order, located, nearest, waited longest, then by id."""

    def key(c: Candidate) -> tuple[object, ...]:
        located = c.lat is not None and c.lng is not None
        distance = distance_m(store_lat, store_lng, c.lat, c.lng) if located else math.inf  # type: ignore[arg-type]
        return (c.declined_this_order, not located, distance, c.available_since, str(c.courier_id))

    return sorted(candidates, key=key)


def in_range(
    store_lat: float, store_lng: float, candidates: Sequence[Candidate], *, radius_m: float
) -> list[Candidate]:
    """The candidates with a known location within ``radius_m`` of the store."""
    return [
        c
        for c in candidates
        if c.lat is not None
        and c.lng is not None
        and distance_m(store_lat, store_lng, c.lat, c.lng) <= radius_m
    ]


def cooled_down(
    candidates: Sequence[Candidate], *, now: datetime, cooldown_s: float
) -> list[Candidate]:
    """The candidates, a decline of this order counting only while it is younger than
    ``cooldown_s`` (a decline of unknown time always counts)."""
    cooldown = timedelta(seconds=cooldown_s)
    return [
        dataclasses.replace(c, declined_this_order=False)
        if c.declined_this_order and c.declined_at is not None and now - c.declined_at >= cooldown
        else c
        for c in candidates
    ]


class DispatchOutcome(StrEnum):
    ASSIGNED = "assigned"
    WAITING = "waiting"  # nobody free: queued with backoff
    OUT_OF_RANGE = "out_of_range"  # couriers free, none in range: queued with backoff
    NOT_NEEDED = "not_needed"  # cancelled, delivered, already has a courier, or unknown


@dataclass(frozen=True, slots=True)
class DispatchResult:
    outcome: DispatchOutcome
    delivery: Delivery | None = None


def dispatch_order(
    *, uow: UnitOfWork, clock: Clock, order_id: uuid.UUID, policy: DispatchPolicy
) -> DispatchResult:
    """Assign the order a courier, or queue it for another try (idempotent)."""
    with uow:
        order = uow.orders.get_for_update(order_id)
        if (
            order is None
            or order.status not in DISPATCHABLE
            or uow.deliveries.active_for_order(order_id) is not None
        ):
            uow.dispatch.remove(order_id)
            uow.commit()
            return DispatchResult(DispatchOutcome.NOT_NEEDED)
        now = clock()
        store_lat, store_lng = uow.deliveries.store_location(order.store_id)
        free = uow.couriers.free_candidates(order_id)
        near = in_range(store_lat, store_lng, free, radius_m=policy.radius_m)
        ranked = rank_candidates(
            store_lat, store_lng, cooled_down(near, now=now, cooldown_s=policy.decline_cooldown_s)
        )
        courier_id = next(
            (c.courier_id for c in ranked if uow.couriers.try_claim(c.courier_id)), None
        )
        if courier_id is None:
            attempts = uow.dispatch.attempts(order_id) + 1
            uow.dispatch.put(order_id, attempts, policy.next_attempt(order_id, attempts, now))
            uow.commit()
            outcome = DispatchOutcome.OUT_OF_RANGE if free and not near else DispatchOutcome.WAITING
            return DispatchResult(outcome)
        delivery = Delivery(
            id=uuid.uuid4(),
            order_id=order_id,
            courier_id=courier_id,
            status=DeliveryStatus.ASSIGNED,
            assigned_at=now,
        )
        uow.deliveries.add(delivery)
        uow.couriers.set_current_delivery(courier_id, delivery.id, at=now)
        uow.dispatch.remove(order_id)
        uow.events.record(
            DeliveryAssigned(
                delivery_id=delivery.id,
                order_id=order_id,
                courier_id=courier_id,
                customer_id=order.customer_id,
                store_id=order.store_id,
            ),
            aggregate_id=order_id,
            occurred_at=now,
        )
        uow.commit()
    return DispatchResult(DispatchOutcome.ASSIGNED, delivery)


def _courier_delivery(
    uow: UnitOfWork, delivery_id: uuid.UUID, courier_id: uuid.UUID
) -> tuple[o.Order, Delivery]:
    """Lock the order, then the delivery; only its courier may see it (others: not found)."""
    found = uow.deliveries.get(delivery_id)
    if found is None or found.courier_id != courier_id:
        raise NotFound("No such delivery.")
    order = uow.orders.get_for_update(found.order_id)
    delivery = uow.deliveries.get_for_update(delivery_id)
    if order is None or delivery is None:
        raise NotFound("No such delivery.")
    return order, delivery


def _states(delivery: Delivery, order: o.Order) -> dict[str, str]:
    return {"delivery_status": str(delivery.status), "order_status": str(order.status)}


def _wrong_state(delivery: Delivery, action: str, order: o.Order) -> InvalidTransition:
    return InvalidTransition(
        f"A delivery that is {delivery.status} (order {order.status}) cannot be {action}.",
        details=_states(delivery, order),
    )


def _record_step(
    uow: UnitOfWork,
    order: o.Order,
    delivery: Delivery,
    event: type[DeliveryPickedUp | DeliveryCompleted | DeliveryDeclined],
    *,
    now: datetime,
    change: o.StatusChange | None = None,
) -> None:
    """Save the delivery's step and record its event, with the order's status change the
    step made, if any (the order saved with its history)."""
    uow.deliveries.save(delivery)
    uow.events.record(
        event(delivery_id=delivery.id, order_id=order.id, courier_id=delivery.courier_id),
        aggregate_id=order.id,
        occurred_at=now,
    )
    if change is not None:
        record_status_change(uow, order, change)
        uow.orders.save(order)


def delivery_pickup(
    *, uow: UnitOfWork, clock: Clock, delivery_id: uuid.UUID, courier_id: uuid.UUID
) -> Delivery:
    """The courier has the bag: order ``ready -> out_for_delivery``, reservation consumed."""
    with uow:
        order, delivery = _courier_delivery(uow, delivery_id, courier_id)
        if delivery.status is not DeliveryStatus.ASSIGNED:
            raise _wrong_state(delivery, "picked up", order)
        if order.status is not o.OrderStatus.READY:
            raise InvalidTransition(
                f"The order is {order.status}; it can be picked up once it is ready.",
                details=_states(delivery, order),
            )
        now = clock()
        change = order.move_to(o.OrderStatus.OUT_FOR_DELIVERY, actor=o.Actor.COURIER, at=now)
        if order.stock_state is o.StockState.RESERVED:
            uow.stock.consume(order.store_id, order.stock_lines())
            order.stock_state = o.StockState.CONSUMED
        delivery.status = DeliveryStatus.PICKED_UP
        delivery.picked_up_at = now
        if uow.deliveries.store_requires_handoff_code(order.store_id):
            delivery.handoff_code = new_handoff_code()
        _record_step(uow, order, delivery, DeliveryPickedUp, now=now, change=change)
        uow.commit()
    return delivery


def delivery_complete(
    *,
    uow: UnitOfWork,
    clock: Clock,
    delivery_id: uuid.UUID,
    courier_id: uuid.UUID,
    handoff_code: str | None = None,
) -> Delivery:
    """Handed over: order ``delivered``, the courier free for the next one.

    A delivery with a hand-off code needs it (``handoff_verify``): a wrong one is counted
    and committed, then refused.
    """
    refusal: DomainError | None = None
    with uow:
        order, delivery = _courier_delivery(uow, delivery_id, courier_id)
        if delivery.status is not DeliveryStatus.PICKED_UP:
            raise _wrong_state(delivery, "completed", order)
        refusal = handoff_verify(delivery, handoff_code)
        if refusal is not None:
            uow.deliveries.save(delivery)  # the attempt counts although the call fails
            uow.commit()
        else:
            now = clock()
            change = order.move_to(o.OrderStatus.DELIVERED, actor=o.Actor.COURIER, at=now)
            _deliver(uow, order, delivery, change, now=now)
            uow.commit()
    if refusal is not None:
        raise refusal
    return delivery


def delivery_complete_by_admin(
    *,
    uow: UnitOfWork,
    clock: Clock,
    order_id: uuid.UUID,
    staff_id: uuid.UUID | None,
    reason: str,
) -> o.Order:
    """Staff complete an ``out_for_delivery`` order's delivery (a locked hand-off code, a
    courier's phone gone): the same events as a courier's drop-off, plus
    ``delivery.completed_by_admin``; the history records the staff member and ``reason``."""
    reason = reason.strip()
    if not reason:
        raise ValidationFailed({"reason": ["This field may not be blank."]})
    with uow:
        order = uow.orders.get_for_update(order_id)
        if order is None:
            raise NotFound("No such order.")
        active = uow.deliveries.active_for_order(order_id)
        delivery = uow.deliveries.get_for_update(active.id) if active else None
        if delivery is None or delivery.status is not DeliveryStatus.PICKED_UP:
            raise InvalidTransition(
                f"An order that is {order.status} has no delivery on its way to complete.",
                details={"status": str(order.status), "requested": "delivered"},
            )
        now = clock()
        change = order.move_to(
            o.OrderStatus.DELIVERED, actor=o.Actor.ADMIN, at=now, reason=reason, actor_id=staff_id
        )
        uow.events.record(
            DeliveryCompletedByAdmin(
                delivery_id=delivery.id,
                order_id=order.id,
                courier_id=delivery.courier_id,
                staff_id=staff_id,
                reason=reason,
                handoff_locked=delivery.handoff_locked,
                handoff_failed_attempts=delivery.handoff_failed_attempts,
            ),
            aggregate_id=order.id,
            occurred_at=now,
        )
        _deliver(uow, order, delivery, change, now=now)
        uow.commit()
    return order


def _deliver(
    uow: UnitOfWork, order: o.Order, delivery: Delivery, change: o.StatusChange, *, now: datetime
) -> None:
    delivery.status = DeliveryStatus.DELIVERED
    delivery.delivered_at = now
    _record_step(uow, order, delivery, DeliveryCompleted, now=now, change=change)
    _free_courier(uow, delivery.courier_id, reason="delivered", now=now, order_id=order.id)


def delivery_decline(
    *, uow: UnitOfWork, clock: Clock, delivery_id: uuid.UUID, courier_id: uuid.UUID
) -> Delivery:
    """Before pickup only: the courier is free and the order goes back to dispatch."""
    with uow:
        order, delivery = _courier_delivery(uow, delivery_id, courier_id)
        if delivery.status is not DeliveryStatus.ASSIGNED:
            raise _wrong_state(delivery, "declined", order)
        now = clock()
        delivery.status = DeliveryStatus.DECLINED
        delivery.ended_at = now
        _record_step(uow, order, delivery, DeliveryDeclined, now=now)
        if order.status in DISPATCHABLE:
            uow.dispatch.put(order.id, uow.dispatch.attempts(order.id), now)
        _free_courier(uow, courier_id, reason="declined", now=now, order_id=order.id)
        uow.commit()
    return delivery


def release_delivery(uow: UnitOfWork, order: o.Order, *, now: datetime) -> None:
    """An order was cancelled: end its assignment (if any) and take it off the queue.

    Runs inside the cancelling unit of work. A delivery already picked up cannot be
    released (the status machine has no cancellation from ``out_for_delivery``).
    """
    uow.dispatch.remove(order.id)
    delivery = uow.deliveries.active_for_order(order.id)
    if delivery is None or delivery.status is not DeliveryStatus.ASSIGNED:
        return
    delivery.status = DeliveryStatus.CANCELLED
    delivery.ended_at = now
    uow.deliveries.save(delivery)
    _free_courier(uow, delivery.courier_id, reason="released", now=now, order_id=order.id)


def _free_courier(
    uow: UnitOfWork,
    courier_id: uuid.UUID,
    *,
    reason: str,
    now: datetime,
    order_id: uuid.UUID | None = None,
) -> None:
    uow.couriers.set_current_delivery(courier_id, None, at=now)
    uow.events.record(
        CourierAvailable(courier_id=courier_id, reason=reason, order_id=order_id),
        aggregate_id=courier_id,
        occurred_at=now,
    )


def courier_set_shift(
    *,
    uow: UnitOfWork,
    clock: Clock,
    courier_id: uuid.UUID,
    online: bool,
    release_assigned: bool = False,
) -> bool:
    """Go online (and be dispatched to) or offline. Going offline keeps an active delivery,
    unless ``release_assigned`` (v1.1, what the courier API does): then a delivery
    assigned and not yet picked up is released (``courier_offline``)."""
    if not isinstance(online, bool):
        raise ValidationFailed({"online": ["Must be true or false."]})
    with uow:
        now = clock()
        dropped = None
        if not online and release_assigned:
            dropped = _lock_assigned_delivery(uow, courier_id)  # the order's lock first
        was_online, busy = uow.couriers.set_online(courier_id, online, at=now)
        if dropped is not None:
            _release_dropped(uow, *dropped, reason=DeclineReason.COURIER_OFFLINE, now=now)
        if online and not was_online and not busy:
            uow.events.record(
                CourierAvailable(courier_id=courier_id, reason="online"),
                aggregate_id=courier_id,
                occurred_at=now,
            )
        uow.commit()
    if release_assigned and not online and busy and dropped is None:
        # A dispatch assigned the courier between the look-up and the shift's lock (or
        # the delivery is picked up): now offline, the courier gets nothing new, so a
        # second look releases what is still only assigned.
        courier_drop_out(
            uow=uow, clock=clock, courier_id=courier_id, reason=DeclineReason.COURIER_OFFLINE
        )
    return online


def courier_drop_out(
    *, uow: UnitOfWork, clock: Clock, courier_id: uuid.UUID, reason: DeclineReason
) -> Delivery | None:
    """The courier can no longer deliver (``reason``, e.g. deactivated): release their
    delivery if it is assigned and not yet picked up; returns it, or None."""
    with uow:
        dropped = _lock_assigned_delivery(uow, courier_id)
        if dropped is not None:
            _release_dropped(uow, *dropped, reason=reason, now=clock())
        uow.commit()
    return dropped[1] if dropped else None


def _lock_assigned_delivery(
    uow: UnitOfWork, courier_id: uuid.UUID
) -> tuple[o.Order, Delivery] | None:
    """Lock the order of the courier's active delivery, then the delivery; the pair when
    it is (still) theirs and not yet picked up."""
    found = uow.deliveries.active_for_courier(courier_id)
    if found is None or found.status is not DeliveryStatus.ASSIGNED:
        return None
    order = uow.orders.get_for_update(found.order_id)
    delivery = uow.deliveries.get_for_update(found.id)
    if (
        order is None
        or delivery is None
        or delivery.courier_id != courier_id
        or delivery.status is not DeliveryStatus.ASSIGNED
    ):
        return None
    return order, delivery


def _release_dropped(
    uow: UnitOfWork,
    order: o.Order,
    delivery: Delivery,
    *,
    reason: DeclineReason,
    now: datetime,
) -> None:
    """End the assignment as declined and queue the order due now; the worker dispatches
    it on the ``delivery.declined`` (no ``courier.available``: the courier is not)."""
    delivery.status = DeliveryStatus.DECLINED
    delivery.ended_at = now
    uow.deliveries.save(delivery)
    uow.events.record(
        DeliveryDeclined(
            delivery_id=delivery.id,
            order_id=order.id,
            courier_id=delivery.courier_id,
            reason=reason.value,
        ),
        aggregate_id=order.id,
        occurred_at=now,
    )
    if order.status in DISPATCHABLE:
        uow.dispatch.put(order.id, uow.dispatch.attempts(order.id), now)
    uow.couriers.set_current_delivery(delivery.courier_id, None, at=now)
