from __future__ import annotations

from typing import Any

import factory
from django.utils import timezone

from lokaly_core.accounts.models import Role, User
from lokaly_core.catalog.models import Product, Store
from lokaly_core.delivery.models import CourierState
from lokaly_core.delivery.models import Delivery as DeliveryRow
from lokaly_core.domain.delivery import (
    DispatchOutcome,
    DispatchPolicy,
    courier_set_shift,
    dispatch_order,
)
from lokaly_core.domain.services import order_reserve_stock
from lokaly_core.inventory.models import Stock
from lokaly_core.orders.uow import DjangoUnitOfWork

PASSWORD = "correct-horse-battery-staple"


# Typed by their model (factory_boy's generics), when called as ``XFactory.create(...)``:
# the plain ``XFactory(...)`` goes through factory_boy's untyped metaclass ``__call__``, which
# mypy reads as making a factory instance.


class UserFactory(factory.django.DjangoModelFactory[User]):
    class Meta:
        model = User

    email = factory.Sequence(lambda n: f"user{n}@example.test")
    name = factory.Faker("name")
    role = Role.CUSTOMER
    # Hashed at build time (make_password), so the user is saved once, with its password.
    password = factory.django.Password(PASSWORD)


class StoreFactory(factory.django.DjangoModelFactory[Store]):
    class Meta:
        model = Store

    class Params:
        # v1's stored flag, now ``accepting_orders`` (``is_open`` is computed from it).
        is_open = True

    name = factory.Sequence(lambda n: f"Store {n}")
    address = factory.Faker("street_address")
    lat = 52.37
    lng = 4.89
    accepting_orders = factory.SelfAttribute("is_open")


class ProductFactory(factory.django.DjangoModelFactory[Product]):
    class Meta:
        model = Product

    sku = factory.Sequence(lambda n: f"SKU-{n:05d}")
    name = factory.Sequence(lambda n: f"Product {n}")
    price_cents = 129
    currency = "EUR"


class StockFactory(factory.django.DjangoModelFactory[Stock]):
    class Meta:
        model = Stock

    store = factory.SubFactory(StoreFactory)
    product = factory.SubFactory(ProductFactory)
    on_hand = 10
    reserved = 0


# -- couriers ---------------------------------------------------------------------------------


def courier_on_shift(courier: User | None = None, *, lat: float = 52.37, lng: float = 4.89) -> User:
    """A courier (new unless given), online through the domain, located at (lat, lng)."""
    courier = courier or UserFactory.create(role=Role.COURIER)
    courier_set_shift(
        uow=DjangoUnitOfWork(), clock=timezone.now, courier_id=courier.id, online=True
    )
    CourierState.objects.filter(pk=courier.id).update(lat=lat, lng=lng, location_at=timezone.now())
    return courier


def dispatch_confirmed(order_id: Any) -> DeliveryRow:
    """Reserve a pending order's stock (-> confirmed) and dispatch it, as the worker does;
    the delivery it got (some courier must be on shift)."""
    order_reserve_stock(uow=DjangoUnitOfWork(), clock=timezone.now, order_id=order_id)
    result = dispatch_order(
        uow=DjangoUnitOfWork(), clock=timezone.now, order_id=order_id, policy=DispatchPolicy()
    )
    assert result.outcome is DispatchOutcome.ASSIGNED, result
    return DeliveryRow.objects.get(order_id=order_id, status="assigned")
