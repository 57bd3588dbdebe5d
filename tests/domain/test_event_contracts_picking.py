"""v1.1's picking events on the wire: their payloads' fields and types (schema version 1),
and ``picking.completed`` of v1 (without ``amended``) still read."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

from lokaly_core.events import AmendedLine, Envelope, OrderAmended, PickingCompleted
from lokaly_core.events import contracts as c

NOW = datetime(2026, 12, 1, 10, 15, 0, tzinfo=UTC)
ORDER, CUSTOMER, MILK, OAT = (uuid.uuid4() for _ in range(4))


def _wire(event: c.EventPayload) -> dict:
    return json.loads(Envelope.wrap(event, aggregate_id=ORDER, occurred_at=NOW).to_json())


def test_order_amended_wire_shape_and_round_trip() -> None:
    event = OrderAmended(
        order_id=ORDER,
        customer_id=CUSTOMER,
        previous_total_cents=875,
        total_cents=995,
        subtotal_cents=796,
        currency="EUR",
        lines=(
            AmendedLine(MILK, "Milk 1L", 3, 1, 129),
            AmendedLine(OAT, "Oat drink 1L", 2, 2, 189, substitute_for=MILK),
        ),
    )

    wire = _wire(event)

    assert (wire["type"], wire["schema_version"]) == ("order.amended", 1)
    assert wire["payload"]["lines"] == [
        {
            "product_id": str(MILK),
            "name": "Milk 1L",
            "quantity": 3,
            "picked_quantity": 1,
            "unit_price_cents": 129,
            "substitute_for": None,
        },
        {
            "product_id": str(OAT),
            "name": "Oat drink 1L",
            "quantity": 2,
            "picked_quantity": 2,
            "unit_price_cents": 189,
            "substitute_for": str(MILK),
        },
    ]
    assert Envelope.from_json(json.dumps(wire)).parse() == event


def test_substitution_events_wire_shapes() -> None:
    proposed = c.OrderSubstitutionProposed(
        order_id=ORDER,
        customer_id=CUSTOMER,
        store_id=ORDER,
        product_id=MILK,
        product_name="Milk 1L",
        substitute_product_id=OAT,
        substitute_name="Oat drink 1L",
        quantity=2,
        unit_price_cents=189,
        expires_at=NOW,
    )
    answered = c.OrderSubstitutionAnswered(
        order_id=ORDER,
        customer_id=CUSTOMER,
        product_id=MILK,
        substitute_product_id=OAT,
        accepted=True,
        status="accepted",
    )

    assert _wire(proposed)["payload"]["expires_at"] == "2026-12-01T10:15:00Z"
    assert _wire(proposed)["payload"]["timezone"] == "UTC"
    assert set(_wire(answered)["payload"]) == {
        "order_id",
        "customer_id",
        "product_id",
        "substitute_product_id",
        "accepted",
        "status",
        "released_quantity",
    }
    for event in (proposed, answered):
        assert Envelope.from_json(json.dumps(_wire(event))).parse() == event


def test_a_v1_picking_completed_payload_reads_as_not_amended() -> None:
    wire = _wire(PickingCompleted(order_id=ORDER, store_id=ORDER))
    del wire["payload"]["amended"]

    parsed = Envelope.from_json(json.dumps(wire)).parse()

    assert isinstance(parsed, PickingCompleted) and parsed.amended is False
