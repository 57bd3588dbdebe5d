"""In-memory fixtures of the domain tests: a store selling milk and bread."""

from __future__ import annotations

import uuid

import pytest

from lokaly_core.domain.model import orders as o
from lokaly_core.domain.model.catalog import Offer, StoreInfo
from lokaly_core.domain.services import ItemRequest, PlaceOrder, place_order
from tests.domain.fakes import FakeClock, FakeUnitOfWork

STORE = uuid.uuid4()
MILK = uuid.uuid4()
BREAD = uuid.uuid4()
CUSTOMER = uuid.uuid4()
STAFF_ID = uuid.uuid4()
ADDRESS = o.Address(
    line1="Keizersgracht 1", city="Amsterdam", postal_code="1015", lat=52.3, lng=4.9
)


@pytest.fixture
def uow() -> FakeUnitOfWork:
    uow = FakeUnitOfWork()
    uow.catalog.stores[STORE] = StoreInfo(id=STORE, is_active=True)
    uow.catalog.offers[(STORE, MILK)] = Offer(MILK, "Milk 1L", 129, "EUR", True)
    uow.catalog.offers[(STORE, BREAD)] = Offer(BREAD, "Bread", 289, "EUR", True)
    uow.stock.put(STORE, MILK, on_hand=5)
    uow.stock.put(STORE, BREAD, on_hand=1)
    return uow


def place(uow: FakeUnitOfWork, *items: tuple[uuid.UUID, int], **kw) -> o.Order:
    command = PlaceOrder(
        customer_id=CUSTOMER,
        store_id=kw.pop("store_id", STORE),
        items=[ItemRequest(p, q) for p, q in items],
        delivery_address=kw.pop("address", ADDRESS),
        note=kw.pop("note", ""),
    )
    return place_order(uow=uow, clock=FakeClock(), command=command, delivery_fee_cents=199)
