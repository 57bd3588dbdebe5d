"""Every event type survives a JSON round trip through the envelope, unchanged."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest

from lokaly_core.events import EVENT_TYPES, Envelope, StockLine, UnknownEventType
from lokaly_core.events import contracts as c

NOW = datetime(2026, 11, 27, 10, 15, 0, 123456, tzinfo=UTC)
LINES = (StockLine(uuid.uuid4(), 2), StockLine(uuid.uuid4(), 1))
ORDER = uuid.uuid4()

SAMPLES = [
    c.OrderCreated(
        order_id=ORDER,
        number="LK-000001",
        customer_id=uuid.uuid4(),
        store_id=uuid.uuid4(),
        lines=LINES,
        total_cents=457,
        currency="EUR",
    ),
    c.OrderStatusChanged(
        order_id=ORDER,
        customer_id=uuid.uuid4(),
        status="confirmed",
        previous_status="pending",
        status_version=2,
        occurred_at=NOW,
    ),
    c.OrderCancelled(
        order_id=ORDER, reason="out_of_stock", cancelled_by="system", previous_status="pending"
    ),
    c.InventoryReserved(order_id=ORDER, store_id=uuid.uuid4(), lines=LINES),
    c.InventoryReleased(order_id=ORDER, store_id=uuid.uuid4(), lines=LINES, reason="x"),
    c.PickingStarted(order_id=ORDER, store_id=uuid.uuid4(), staff_id=uuid.uuid4()),
    c.PickingCompleted(order_id=ORDER, store_id=uuid.uuid4()),
    c.DeliveryAssigned(
        delivery_id=uuid.uuid4(),
        order_id=ORDER,
        courier_id=uuid.uuid4(),
        customer_id=uuid.uuid4(),
        store_id=uuid.uuid4(),
    ),
    c.DeliveryPickedUp(delivery_id=uuid.uuid4(), order_id=ORDER, courier_id=uuid.uuid4()),
    c.DeliveryCompleted(delivery_id=uuid.uuid4(), order_id=ORDER, courier_id=uuid.uuid4()),
    c.DeliveryDeclined(delivery_id=uuid.uuid4(), order_id=ORDER, courier_id=uuid.uuid4()),
    c.DeliveryCompletedByAdmin(
        delivery_id=uuid.uuid4(),
        order_id=ORDER,
        courier_id=uuid.uuid4(),
        staff_id=uuid.uuid4(),
        reason="customer showed ID",
        handoff_locked=True,
        handoff_failed_attempts=5,
    ),
    c.CourierAvailable(courier_id=uuid.uuid4(), reason="online"),
    c.PickingCompleted(order_id=ORDER, store_id=uuid.uuid4(), amended=True),
    c.OrderSubstitutionProposed(
        order_id=ORDER,
        customer_id=uuid.uuid4(),
        store_id=uuid.uuid4(),
        product_id=uuid.uuid4(),
        product_name="Milk 1L",
        substitute_product_id=uuid.uuid4(),
        substitute_name="Oat drink 1L",
        quantity=2,
        unit_price_cents=189,
        expires_at=NOW,
        timezone="Europe/Amsterdam",
        staff_id=uuid.uuid4(),
    ),
    c.OrderSubstitutionAnswered(
        order_id=ORDER,
        customer_id=uuid.uuid4(),
        product_id=uuid.uuid4(),
        substitute_product_id=uuid.uuid4(),
        accepted=False,
        status="expired",
        released_quantity=2,
    ),
    c.OrderAmended(
        order_id=ORDER,
        customer_id=uuid.uuid4(),
        previous_total_cents=657,
        total_cents=577,
        subtotal_cents=378,
        currency="EUR",
        lines=(
            c.AmendedLine(uuid.uuid4(), "Milk 1L", 3, 1, 129),
            c.AmendedLine(uuid.uuid4(), "Oat drink 1L", 2, 2, 189, substitute_for=uuid.uuid4()),
        ),
    ),
]


def test_every_contract_type_has_a_sample() -> None:
    assert {type(s).TYPE for s in SAMPLES} == set(EVENT_TYPES)
    assert all("." in t and t == t.lower() for t in EVENT_TYPES)


@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: type(e).TYPE)
def test_event_round_trips_through_json(event: c.EventPayload) -> None:
    envelope = Envelope.wrap(event, aggregate_id=ORDER, occurred_at=NOW)

    wire = json.loads(envelope.to_json())
    back = Envelope.from_json(json.dumps(wire))

    assert set(wire) == {
        "event_id",
        "type",
        "schema_version",
        "occurred_at",
        "aggregate_id",
        "payload",
    }
    assert wire["occurred_at"] == "2026-11-27T10:15:00.123456Z"
    assert wire["schema_version"] == 1
    assert back == envelope
    assert back.parse() == event


def test_unknown_event_type_is_reported() -> None:
    envelope = Envelope.wrap(SAMPLES[0], aggregate_id=ORDER, occurred_at=NOW)
    strange = Envelope.from_dict({**envelope.to_dict(), "type": "order.teleported"})
    with pytest.raises(UnknownEventType):
        strange.parse()


def test_delivery_completed_by_admin_v1_wire_shape() -> None:
    """v1.1's new type: its payload's fields and types on the wire (schema version 1)."""
    staff, delivery, courier = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    event = c.DeliveryCompletedByAdmin(
        delivery_id=delivery,
        order_id=ORDER,
        courier_id=courier,
        staff_id=staff,
        reason="locked",
        handoff_locked=True,
        handoff_failed_attempts=5,
    )
    wire = json.loads(Envelope.wrap(event, aggregate_id=ORDER, occurred_at=NOW).to_json())

    assert wire["type"] == "delivery.completed_by_admin"
    assert wire["schema_version"] == 1
    assert wire["payload"] == {
        "delivery_id": str(delivery),
        "order_id": str(ORDER),
        "courier_id": str(courier),
        "staff_id": str(staff),
        "reason": "locked",
        "handoff_locked": True,
        "handoff_failed_attempts": 5,
    }
