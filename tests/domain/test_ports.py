"""Every port's signature resolves at run time: the ports import the model they speak in
(not from the service modules that import the ports, under ``TYPE_CHECKING``)."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable

import pytest

from lokaly_core.domain import ports
from lokaly_core.domain.model.delivery import Delivery

PORTS = [
    cls
    for cls in vars(ports).values()
    if inspect.isclass(cls)
    and typing.Protocol in cls.__bases__
    and cls.__module__ == ports.__name__
]
_DUNDERS = {"__enter__", "__exit__"}


def _members(port: type) -> list[tuple[str, Callable[..., object]]]:
    """The port's methods and the getters of its properties."""
    members: list[tuple[str, Callable[..., object]]] = []
    for name, value in vars(port).items():
        if isinstance(value, property) and value.fget is not None:
            members.append((name, value.fget))
        elif inspect.isfunction(value) and (not name.startswith("_") or name in _DUNDERS):
            members.append((name, value))
    return members


def test_every_port_is_found() -> None:
    assert {p.__name__ for p in PORTS} == {
        "CatalogReader",
        "OrderRepository",
        "StockRepository",
        "PickingRepository",
        "DeliveryRepository",
        "CourierRepository",
        "DispatchQueue",
        "EventRecorder",
        "UnitOfWork",
    }


@pytest.mark.parametrize("port", PORTS, ids=lambda p: p.__name__)
def test_type_hints_resolve_on_every_method_of(port: type) -> None:
    members = _members(port)
    assert members
    for name, member in members:
        hints = typing.get_type_hints(member)
        assert "return" in hints, f"{port.__name__}.{name}"


def test_a_port_names_the_model_class_itself() -> None:
    assert typing.get_type_hints(ports.DeliveryRepository.get)["return"] == Delivery | None
