"""What the worker does for each event type. Thin: load by id, call a service."""

from __future__ import annotations

import logging
import uuid
from collections import OrderedDict
from collections.abc import Sequence

from django.conf import settings
from django.utils import timezone

from lokaly_core.broadcast import get_broadcaster
from lokaly_core.domain.model.delivery import DROP_OUTS
from lokaly_core.domain.model.orders import OrderStatus
from lokaly_core.domain.notifications import notifies
from lokaly_core.domain.picking import order_advance_to
from lokaly_core.domain.services import order_reserve_stock, orders_reserve_stock
from lokaly_core.domain.substitutions import substitutions_expire_due
from lokaly_core.events import (
    CourierAvailable,
    DeliveryAssigned,
    DeliveryDeclined,
    Envelope,
    EventPayload,
    OrderAmended,
    OrderCreated,
    OrderStatusChanged,
    OrderSubstitutionProposed,
    PickingCompleted,
    PickingStarted,
)
from lokaly_core.notifications.services import notify_for_event, notify_for_events
from lokaly_core.orders import selectors
from lokaly_core.orders.realtime import (
    order_amended_message,
    order_group,
    status_changed_message,
    substitution_proposed_message,
)
from lokaly_core.orders.uow import DjangoUnitOfWork
from lokaly_worker.dispatch import dispatch_confirmed, dispatch_one, dispatch_waiting
from lokaly_worker.registry import every, every_tick, handles, on_commit

logger = logging.getLogger("lokaly.worker.handlers")


def _reserve_stock_batch(pairs: list[tuple[Envelope, OrderCreated]]) -> None:
    """The batch's orders in one go: locked together, stock reserved in stream order."""
    order_ids = [event.order_id for _envelope, event in pairs]
    orders = orders_reserve_stock(
        uow=DjangoUnitOfWork(savepoint=False), clock=timezone.now, order_ids=order_ids
    )
    missing = [i for i, order in orders.items() if order is None]
    if missing:
        # Fails the batch: split, the event of the missing order fails alone, as below.
        raise _not_in_this_database(missing[0])
    logger.info("stock reservations decided", extra={"orders": len(order_ids)})


@handles(OrderCreated, batch=_reserve_stock_batch)
def reserve_stock(envelope: Envelope, event: OrderCreated) -> None:
    order = order_reserve_stock(
        uow=DjangoUnitOfWork(savepoint=False), clock=timezone.now, order_id=event.order_id
    )
    if order is None:
        # Events are published only after their order committed, so this worker is
        # looking at another database than the API that placed the order. Failing (and
        # so retrying, then dead-lettering) keeps the event visible instead of acking it.
        raise _not_in_this_database(event.order_id)
    logger.info(
        "stock reservation decided",
        extra={
            "event_id": str(envelope.event_id),
            "order_id": str(event.order_id),
            "status": order.status,
        },
    )


def _not_in_this_database(order_id: uuid.UUID) -> LookupError:
    return LookupError(
        f"order {order_id} is not in this worker's database; check that the worker "
        "and the APIs share DATABASE_URL, and that environments sharing a Redis use "
        "different EVENT_STREAM names"
    )


# The status changes this process broadcast the moment they committed (event ids, the
# newest last, bounded): their event, read back from the stream a batch later, needs no
# second broadcast from here.
_BROADCAST_AT_COMMIT: OrderedDict[uuid.UUID, None] = OrderedDict()
_BROADCAST_AT_COMMIT_MAX = 10_000


@on_commit
def broadcast_status_changes_at_commit(envelopes: Sequence[Envelope]) -> None:
    """The socket hears of a status change this worker made (``confirmed``, ``ready``,
    ...) as soon as its transaction commits, instead of a batch later when its event comes
    back from the stream (docs/performance.md, "Issue 10, third session"). The event's
    own broadcast (below) stays: it is the one that cannot be lost to a crash between the
    commit and this call, and a socket drops a change it already has."""
    changes = [e for e in envelopes if e.type == OrderStatusChanged.TYPE]
    if not changes:
        return
    messages = []
    for envelope in changes:
        event = envelope.parse()
        assert isinstance(event, OrderStatusChanged)
        messages.append((order_group(event.order_id), status_changed_message(event)))
    get_broadcaster().group_send_many(messages)  # a batch's changes at once, one wait
    for envelope in changes:
        _BROADCAST_AT_COMMIT[envelope.event_id] = None
    while len(_BROADCAST_AT_COMMIT) > _BROADCAST_AT_COMMIT_MAX:
        _BROADCAST_AT_COMMIT.popitem(last=False)


@handles(OrderStatusChanged, transactional=False)
def broadcast_status_change(envelope: Envelope, event: OrderStatusChanged) -> None:
    if envelope.event_id in _BROADCAST_AT_COMMIT:
        del _BROADCAST_AT_COMMIT[envelope.event_id]
        return  # sent when it committed, by this process
    get_broadcaster().group_send(order_group(event.order_id), status_changed_message(event))


@handles(PickingStarted)
def order_to_picking(envelope: Envelope, event: PickingStarted) -> None:
    order_advance_to(
        uow=DjangoUnitOfWork(savepoint=False),
        clock=timezone.now,
        order_id=event.order_id,
        target=OrderStatus.PICKING,
    )


@handles(PickingCompleted)
def order_to_ready(envelope: Envelope, event: PickingCompleted) -> None:
    if event.amended:
        _broadcast_amendment(envelope, event.order_id)
    order_advance_to(
        uow=DjangoUnitOfWork(savepoint=False),
        clock=timezone.now,
        order_id=event.order_id,
        target=OrderStatus.READY,
    )


def _broadcast_amendment(envelope: Envelope, order_id: uuid.UUID) -> None:
    """v1.1: the watchers get ``order.amended`` before the ``status_changed`` to ``ready``.

    Sent here, inside the transaction that makes the order ready, rather than by a
    handler of ``order.amended`` after its batch committed: the ready change is
    published when this transaction commits, so however many workers there are, the
    amendment was on its way first (and a failed send fails the handler, so the order
    waits for it). A retried transaction may send it twice; sockets drop the repeat.
    """
    order = selectors.orders_with_lines().filter(pk=order_id).first()
    if order is None or order.status == OrderStatus.CANCELLED:
        return
    message = order_amended_message(selectors.order_to_dict(order))
    get_broadcaster().group_send(order_group(order_id), message)
    logger.info(
        "order amendment broadcast",
        extra={"event_id": str(envelope.event_id), "order_id": str(order_id)},
    )


@handles(OrderSubstitutionProposed, transactional=False)
def broadcast_substitution_proposed(envelope: Envelope, event: OrderSubstitutionProposed) -> None:
    get_broadcaster().group_send(order_group(event.order_id), substitution_proposed_message(event))


@every(lambda: float(settings.SUBSTITUTION_EXPIRY_EVERY_S))
def expire_due_substitutions() -> None:
    """Unanswered proposals past their expiry count as rejected: their units go back
    (``order.substitution_answered`` with status ``expired``). Each is expired under its
    order's lock, so a customer's answer at the same moment and other workers never
    expire one twice; a bounded batch per turn, the rest the next turn."""
    expired = substitutions_expire_due(
        new_uow=DjangoUnitOfWork,
        clock=timezone.now,
        limit=int(settings.SUBSTITUTION_EXPIRY_BATCH),
    )
    if expired:
        logger.info("substitute proposals expired", extra={"expired": expired})


# -- delivery ---------------------------------------------------------------------------


def _confirmed(event: OrderStatusChanged) -> bool:
    return event.status == OrderStatus.CONFIRMED


def _dispatch_confirmed_batch(pairs: list[tuple[Envelope, OrderStatusChanged]]) -> None:
    """The batch's confirmations: one check for a free courier, then one queue upsert for
    all of them when nobody is free (lokaly_worker/dispatch.py)."""
    dispatch_confirmed(
        [(event.order_id, envelope.event_id) for envelope, event in pairs],
        via=OrderStatusChanged.TYPE,
    )


@handles(OrderStatusChanged, when=_confirmed, batch=_dispatch_confirmed_batch)
def dispatch_confirmed_order(envelope: Envelope, event: OrderStatusChanged) -> None:
    """A newly confirmed order gets a courier, or joins the dispatch queue."""
    dispatch_one(event.order_id, joined=True, event_id=envelope.event_id, via=envelope.type)


@handles(CourierAvailable, transactional=False)
def dispatch_to_available_courier(envelope: Envelope, event: CourierAvailable) -> None:
    """A courier is free: the queue is served, longest waiting first, one transaction per
    order. Not deduplicated: a second run only finds fewer orders or no free courier."""
    dispatch_waiting(due_only=False, event_id=envelope.event_id, via=envelope.type)


def _dropped_out(event: DeliveryDeclined) -> bool:
    return event.reason in DROP_OUTS


@handles(DeliveryDeclined, when=_dropped_out)
def dispatch_after_drop_out(envelope: Envelope, event: DeliveryDeclined) -> None:
    """The courier went offline or was deactivated before pickup: nobody became free, so
    the released order (queued, due now) is dispatched here at once."""
    dispatch_one(event.order_id, joined=True, event_id=envelope.event_id, via=envelope.type)


@every_tick
def dispatch_due_orders() -> None:
    """Orders whose backoff has passed are tried again (a courier may have come free
    without an event reaching this worker, e.g. one dead-lettered)."""
    dispatch_waiting(due_only=True, event_id=None, via="retry")


# -- notifications ----------------------------------------------------------------------


def _write_notifications_batch(pairs: list[tuple[Envelope, EventPayload]]) -> None:
    """The batch's notifications: one read of the orders' numbers, one multi-row insert."""
    notify_for_events(pairs)


@handles(
    OrderStatusChanged,
    DeliveryAssigned,
    CourierAvailable,
    OrderSubstitutionProposed,
    OrderAmended,
    when=notifies,
    batch=_write_notifications_batch,
)
def write_notifications(envelope: Envelope, event: EventPayload) -> None:
    notify_for_event(envelope=envelope, event=event)
