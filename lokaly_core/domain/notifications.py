"""Notifications: which event tells whom what, and when a failed send is tried again.

Pure rules; ``lokaly_core.notifications.services`` stores the drafts and sends them.

- ``order.status_changed`` -> the customer: to ``confirmed``: ``order.confirmed``; to
  ``cancelled`` with reason ``out_of_stock``: ``order.out_of_stock``, with any other
  reason: ``order.cancelled``; to ``out_for_delivery``: ``order.picked_up``; to
  ``delivered``: ``order.delivered``;
- ``delivery.assigned`` -> the courier: ``delivery.assigned``;
- v1.1: ``order.substitution_proposed`` -> the customer: ``order.substitution_proposed``
  ("... instead of ..., answer by HH:MM", the store's local time); ``order.amended`` ->
  the customer: ``order.amended`` with the new total;
- ``courier.available`` with reason ``released`` (the order they were assigned was
  cancelled before pickup) -> the courier: ``delivery.cancelled``.

Sending is at least once; ``SendPolicy`` says when a failed send is tried again.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from lokaly_core.domain.backoff import backoff_ms
from lokaly_core.domain.model.orders import OUT_OF_STOCK, OrderStatus
from lokaly_core.events import (
    CourierAvailable,
    DeliveryAssigned,
    EventPayload,
    OrderAmended,
    OrderStatusChanged,
    OrderSubstitutionProposed,
)


@dataclass(frozen=True, slots=True)
class NotificationDraft:
    user_id: uuid.UUID
    type: str
    title: str
    body: str
    order_id: uuid.UUID | None


def notifies(event: EventPayload) -> bool:
    """Whether ``notification_drafts`` has something to say about the event (so callers
    look up the order number only when it is needed)."""
    if isinstance(event, OrderSubstitutionProposed | OrderAmended):
        return True
    if isinstance(event, OrderStatusChanged):
        return event.status in _CUSTOMER_STATUSES
    if isinstance(event, CourierAvailable):
        return event.reason == RELEASED and event.order_id is not None
    return isinstance(event, DeliveryAssigned)


RELEASED = "released"


_CUSTOMER_STATUSES = frozenset(
    {
        OrderStatus.CONFIRMED,
        OrderStatus.CANCELLED,
        OrderStatus.OUT_FOR_DELIVERY,
        OrderStatus.DELIVERED,
    }
)


def notification_drafts(event: EventPayload, *, order_number: str) -> list[NotificationDraft]:
    """The notifications the event causes (none for most events)."""
    if isinstance(event, OrderStatusChanged):
        draft = _customer_draft(event, order_number)
        return [draft] if draft else []
    if isinstance(event, DeliveryAssigned):
        return [
            NotificationDraft(
                user_id=event.courier_id,
                type="delivery.assigned",
                title="New delivery",
                body=f"Order {order_number} is yours to deliver. Head to the store.",
                order_id=event.order_id,
            )
        ]
    if isinstance(event, OrderSubstitutionProposed):
        return [_substitute_draft(event, order_number)]
    if isinstance(event, OrderAmended):
        return [
            NotificationDraft(
                user_id=event.customer_id,
                type="order.amended",
                title="Order updated",
                body=f"Your order {order_number} now holds what the store could pick; "
                f"the new total is {format_money(event.total_cents, event.currency)} "
                f"(was {format_money(event.previous_total_cents, event.currency)}).",
                order_id=event.order_id,
            )
        ]
    if isinstance(event, CourierAvailable) and notifies(event):
        return [
            NotificationDraft(
                user_id=event.courier_id,
                type="delivery.cancelled",
                title="Delivery cancelled",
                body=f"Order {order_number} was cancelled; you need not collect it.",
                order_id=event.order_id,
            )
        ]
    return []


def _substitute_draft(event: OrderSubstitutionProposed, number: str) -> NotificationDraft:
    return NotificationDraft(
        user_id=event.customer_id,
        type="order.substitution_proposed",
        title="A substitute for your order",
        body=f"{event.product_name} is short for your order {number}: the store proposes "
        f"{event.quantity} x {event.substitute_name} "
        f"({format_money(event.unit_price_cents, 'each')}) instead; answer by "
        f"{_local_time(event.expires_at, event.timezone)}.",
        order_id=event.order_id,
    )


def format_money(cents: int, currency: str) -> str:
    """``1250, "EUR"`` -> ``"12.50 EUR"`` (``"each"`` for a unit price reads as such)."""
    return f"{cents // 100}.{cents % 100:02d} {currency}"


def _local_time(at: datetime, timezone: str) -> str:
    """HH:MM in the store's time zone (UTC, named, when the zone is unknown)."""
    try:
        return at.astimezone(ZoneInfo(timezone)).strftime("%H:%M")
    except (ZoneInfoNotFoundError, ValueError):
        return at.astimezone(UTC).strftime("%H:%M UTC")


def _customer_draft(event: OrderStatusChanged, number: str) -> NotificationDraft | None:
    status = event.status
    if status == OrderStatus.CONFIRMED:
        kind, title, body = (
            "order.confirmed",
            "Order confirmed",
            f"Your order {number} is confirmed; the store will pick it soon.",
        )
    elif status == OrderStatus.CANCELLED and event.reason == OUT_OF_STOCK:
        kind, title, body = (
            "order.out_of_stock",
            "Order cancelled: out of stock",
            f"Sorry, some items of your order {number} are out of stock, so it was cancelled.",
        )
    elif status == OrderStatus.CANCELLED:
        kind, title, body = ("order.cancelled", "Order cancelled", _cancelled_body(event, number))
    elif status == OrderStatus.OUT_FOR_DELIVERY:
        kind, title, body = (
            "order.picked_up",
            "On its way",
            f"A courier has picked up your order {number} and is on the way.",
        )
    elif status == OrderStatus.DELIVERED:
        kind, title, body = (
            "order.delivered",
            "Delivered",
            f"Your order {number} has been delivered. Enjoy!",
        )
    else:
        return None
    return NotificationDraft(
        user_id=event.customer_id, type=kind, title=title, body=body, order_id=event.order_id
    )


def _cancelled_body(event: OrderStatusChanged, number: str) -> str:
    reason = (event.reason or "").strip()
    suffix = f" Reason: {reason[:300]}" if reason else ""
    return f"Your order {number} was cancelled.{suffix}"


@dataclass(frozen=True, slots=True)
class SendPolicy:
    """How often a failing send is tried, and how long to wait in between."""

    max_attempts: int = 6
    retry_base_ms: int = 1_000
    retry_max_ms: int = 300_000

    def gives_up(self, attempts: int) -> bool:
        """After ``attempts`` failed sends, whether the notification is marked failed."""
        return attempts >= self.max_attempts

    def next_attempt(self, notification_id: uuid.UUID, attempts: int, now: datetime) -> datetime:
        """Exponential backoff with deterministic jitter (50-100 % of the capped delay)."""
        delay = backoff_ms(
            attempts,
            f"{notification_id}:{attempts}",
            base_ms=self.retry_base_ms,
            max_ms=self.retry_max_ms,
        )
        return now + timedelta(milliseconds=delay)
