"""The handler registry: handlers are registered by event contract, found by type name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import pytest

from lokaly_core.events import Envelope, EventPayload, OrderCreated, PickingStarted
from lokaly_worker.registry import Registry


def _noop(envelope: Envelope, event: EventPayload) -> None:
    pass


def test_a_handler_of_several_events_is_found_under_each_type_name() -> None:
    reg = Registry()

    reg.handles(OrderCreated, PickingStarted, transactional=False)(_noop)

    assert [h.fn for h in reg.for_type("order.created")] == [_noop]
    assert [h.fn for h in reg.for_type("picking.started")] == [_noop]
    assert reg.for_type("picking.completed") == []
    assert reg.for_type("order.created")[0].transactional is False


def test_only_the_event_contracts_can_be_registered() -> None:
    @dataclass(frozen=True, slots=True)
    class Lookalike(EventPayload):
        TYPE: ClassVar[str] = "order.created"  # a contract's name, not its class

    with pytest.raises(TypeError, match="Lookalike is not an event contract"):
        Registry().handles(Lookalike)
