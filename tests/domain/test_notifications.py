"""Which events notify whom, and the retry schedule of failed sends."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from lokaly_core.domain.notifications import (
    NotificationDraft,
    SendPolicy,
    notification_drafts,
    notifies,
)
from lokaly_core.events import (
    CourierAvailable,
    DeliveryAssigned,
    DeliveryCompleted,
    InventoryReserved,
    OrderStatusChanged,
)

ORDER = uuid.uuid4()
CUSTOMER = uuid.uuid4()
COURIER = uuid.uuid4()
NOW = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)


def _status(status: str, reason: str | None = None) -> OrderStatusChanged:
    return OrderStatusChanged(
        order_id=ORDER,
        customer_id=CUSTOMER,
        status=status,
        previous_status="pending",
        status_version=2,
        occurred_at=NOW,
        reason=reason,
    )


@pytest.mark.parametrize(
    ("status", "reason", "kind", "title"),
    [
        ("confirmed", None, "order.confirmed", "Order confirmed"),
        ("cancelled", "out_of_stock", "order.out_of_stock", "Order cancelled: out of stock"),
        ("cancelled", "changed my mind", "order.cancelled", "Order cancelled"),
        ("out_for_delivery", None, "order.picked_up", "On its way"),
        ("delivered", None, "order.delivered", "Delivered"),
    ],
)
def test_customer_is_told_about_their_orders_milestones(status, reason, kind, title) -> None:
    event = _status(status, reason)

    [draft] = notification_drafts(event, order_number="LK-000042")

    assert notifies(event)
    assert (draft.user_id, draft.type, draft.title, draft.order_id) == (
        CUSTOMER,
        kind,
        title,
        ORDER,
    )
    assert "LK-000042" in draft.body


def test_cancellation_notice_gives_the_reason() -> None:
    [draft] = notification_drafts(_status("cancelled", "store closed"), order_number="LK-1")

    assert draft.body == "Your order LK-1 was cancelled. Reason: store closed"


@pytest.mark.parametrize("status", ["pending", "picking", "ready"])
def test_intermediate_statuses_notify_nobody(status) -> None:
    event = _status(status)

    assert not notifies(event)
    assert notification_drafts(event, order_number="LK-1") == []


def test_courier_is_told_about_a_new_delivery() -> None:
    event = DeliveryAssigned(delivery_id=uuid.uuid4(), order_id=ORDER, courier_id=COURIER)

    assert notification_drafts(event, order_number="LK-7") == [
        NotificationDraft(
            user_id=COURIER,
            type="delivery.assigned",
            title="New delivery",
            body="Order LK-7 is yours to deliver. Head to the store.",
            order_id=ORDER,
        )
    ]


def test_other_events_notify_nobody() -> None:
    for event in (
        DeliveryCompleted(delivery_id=uuid.uuid4(), order_id=ORDER, courier_id=COURIER),
        InventoryReserved(order_id=ORDER, store_id=uuid.uuid4(), lines=()),
    ):
        assert not notifies(event)
        assert notification_drafts(event, order_number="LK-1") == []


def test_failed_sends_back_off_exponentially_up_to_the_cap_then_give_up() -> None:
    policy = SendPolicy(max_attempts=4, retry_base_ms=1_000, retry_max_ms=5_000)
    nid = uuid.uuid4()

    delays = [
        (policy.next_attempt(nid, n, NOW) - NOW) / timedelta(seconds=1) for n in (1, 2, 3, 4, 9)
    ]

    for delay, ceiling in zip(delays, (1, 2, 4, 5, 5), strict=True):
        assert ceiling / 2 <= delay <= ceiling
    assert [policy.gives_up(n) for n in (1, 3, 4, 5)] == [False, False, True, True]


def test_courier_is_told_when_their_assigned_order_is_cancelled() -> None:
    courier, order = uuid.uuid4(), uuid.uuid4()
    released = CourierAvailable(courier_id=courier, reason="released", order_id=order)

    [draft] = notification_drafts(released, order_number="LK-000042")

    assert (draft.user_id, draft.type, draft.order_id) == (courier, "delivery.cancelled", order)
    assert "LK-000042" in draft.body
    for reason in ("online", "delivered", "declined"):
        assert not notifies(CourierAvailable(courier_id=courier, reason=reason, order_id=order))
