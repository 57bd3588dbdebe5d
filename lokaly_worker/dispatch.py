"""Running dispatch from the worker: one order, or the queue of waiting orders.

Three roads lead here (see ``handlers``): an order became ``confirmed``, a courier became
available, and the periodic retry of orders whose backoff has passed. Dispatch is
idempotent and claims couriers with ``SKIP LOCKED``, so any number of workers may take
any of these roads at once.
"""

from __future__ import annotations

import logging
import uuid

from django.conf import settings
from django.utils import timezone

from lokaly_core.delivery.repositories import (
    free_courier_exists,
    queue_for_dispatch,
    waiting_orders,
)
from lokaly_core.domain.delivery import (
    DispatchOutcome,
    DispatchPolicy,
    DispatchResult,
    dispatch_order,
)
from lokaly_core.orders.uow import DjangoUnitOfWork

logger = logging.getLogger("lokaly.worker.dispatch")

# Orders looked at per pass over the queue. One free courier takes at most one order, so
# a pass usually stops early, at the first order that finds nobody.
QUEUE_PASS_LIMIT = 100


def dispatch_policy() -> DispatchPolicy:
    return DispatchPolicy(
        retry_base_ms=settings.DISPATCH_RETRY_BASE_MS,
        retry_max_ms=settings.DISPATCH_RETRY_MAX_MS,
        radius_m=settings.DISPATCH_RADIUS_M,
        decline_cooldown_s=settings.DECLINE_COOLDOWN_SECONDS,
    )


def dispatch_one(
    order_id: uuid.UUID, *, joined: bool, event_id: uuid.UUID | None, via: str
) -> DispatchResult:
    """Dispatch one order. ``joined``: inside the caller's transaction (a handler's),
    else in a transaction of its own."""
    result = dispatch_order(
        uow=DjangoUnitOfWork(savepoint=not joined),
        clock=timezone.now,
        order_id=order_id,
        policy=dispatch_policy(),
    )
    _log(result, order_id=order_id, event_id=event_id, via=via)
    return result


def dispatch_confirmed(orders: list[tuple[uuid.UUID, uuid.UUID]], *, via: str) -> None:
    """Newly confirmed orders, ``(order_id, event_id)`` in stream order, inside the
    caller's (the batch's) transaction. With no courier free, the usual case in a rush,
    all of them join the dispatch queue in one statement; else each is dispatched."""
    if free_courier_exists():
        for order_id, event_id in orders:
            dispatch_one(order_id, joined=True, event_id=event_id, via=via)
        return
    policy, now = dispatch_policy(), timezone.now()
    queued = queue_for_dispatch(
        [(order_id, policy.next_attempt(order_id, 1, now)) for order_id, _event in orders]
    )
    logger.debug("queued, no courier free", extra={"orders": len(orders), "queued": queued})


def dispatch_waiting(*, due_only: bool, event_id: uuid.UUID | None, via: str) -> int:
    """Dispatch queued orders, longest waiting first, each in its own transaction; stop at
    the first that finds no free courier. Returns how many got one. An order that finds
    couriers free but none in range (``OUT_OF_RANGE``, another city's) does not stop the
    pass: it is pushed back by its backoff and the next order is tried.

    Run outside any transaction, so that each assignment commits (and frees its locks)
    before the next order is tried. With no courier free it returns at once after one
    indexed read: thousands of waiting orders then cost nothing per turn
    (bench/dispatch_queue.py).
    """
    if not free_courier_exists():
        return 0
    assigned = 0
    for order_id in waiting_orders(limit=QUEUE_PASS_LIMIT, due_only=due_only):
        result = dispatch_one(order_id, joined=False, event_id=event_id, via=via)
        if result.outcome is DispatchOutcome.WAITING:
            break
        if result.outcome is DispatchOutcome.ASSIGNED:
            assigned += 1
    return assigned


def _log(
    result: DispatchResult, *, order_id: uuid.UUID, event_id: uuid.UUID | None, via: str
) -> None:
    fields: dict[str, object] = {
        "order_id": str(order_id),
        "outcome": str(result.outcome),
        "via": via,
    }
    if event_id is not None:
        fields["event_id"] = str(event_id)
    if result.delivery is None:
        logger.debug("dispatch", extra=fields)
        return
    fields["delivery_id"] = str(result.delivery.id)
    fields["courier_id"] = str(result.delivery.courier_id)
    logger.info("delivery assigned", extra=fields)
