"""``delivery.declined``'s ``reason`` (v1.1): an optional field, schema version 1 kept, so a
payload written before it existed still parses (as a decline)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest

from lokaly_core.domain.model.delivery import DROP_OUTS, DeclineReason
from lokaly_core.events import DeliveryDeclined, Envelope

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
IDS = {"delivery_id": uuid.uuid4(), "order_id": uuid.uuid4(), "courier_id": uuid.uuid4()}


@pytest.mark.parametrize("reason", list(DeclineReason))
def test_each_reason_round_trips_through_json(reason: DeclineReason) -> None:
    event = DeliveryDeclined(**IDS, reason=reason.value)
    envelope = Envelope.wrap(event, aggregate_id=IDS["order_id"], occurred_at=NOW)

    wire = json.loads(envelope.to_json())
    back = Envelope.from_json(json.dumps(wire))

    assert wire["schema_version"] == 1
    assert wire["payload"]["reason"] == reason.value
    assert back.parse() == event


def test_a_v1_payload_without_a_reason_is_a_decline() -> None:
    v1 = {"type": "delivery.declined", "schema_version": 1, "event_id": str(uuid.uuid4())}
    v1 |= {"occurred_at": "2026-12-01T12:00:00Z", "aggregate_id": str(IDS["order_id"])}
    v1["payload"] = {k: str(v) for k, v in IDS.items()}

    event = Envelope.from_dict(v1).parse()

    assert event == DeliveryDeclined(**IDS, reason="declined")


def test_the_drop_out_reasons() -> None:
    assert {r.value for r in DROP_OUTS} == {"courier_offline", "courier_deactivated"}
    assert DeclineReason.DECLINED not in DROP_OUTS
