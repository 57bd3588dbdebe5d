"""``seed_demo`` gives `make dev` a world to order in: stores with stock, one account per
role, and couriers online near the stores, so an order can travel to ``delivered``."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from lokaly_core.accounts.models import Role, User
from lokaly_core.catalog.models import Store
from lokaly_core.delivery.models import CourierState
from lokaly_core.domain.delivery import distance_km
from lokaly_core.inventory.models import Stock

pytestmark = pytest.mark.django_db(transaction=True)


def _seed(*args: str) -> str:
    out = StringIO()
    call_command("seed_demo", "--force", "--password", "demo-pass-123", *args, stdout=out)
    return out.getvalue()


def test_seed_demo_twice_gives_couriers_online_near_the_stores() -> None:
    _seed()
    output = _seed()  # safe to re-run

    couriers = User.objects.filter(role=Role.COURIER, email__endswith="@lokaly.test")
    assert couriers.count() == 3
    states = CourierState.objects.filter(courier__in=couriers)
    assert states.count() == 3
    stores = list(Store.objects.filter(name__startswith="Lokaly "))
    for state in states:
        assert state.is_online is True
        assert state.current_delivery_id is None
        assert state.lat is not None and state.lng is not None
        nearest = min(distance_km(state.lat, state.lng, s.lat, s.lng) for s in stores)
        assert nearest < 3.0
    assert Stock.objects.filter(store__in=stores, on_hand=100).count() == 16
    assert "courier@lokaly.test / demo-pass-123 / courier" in output
    assert User.objects.get(email="courier@lokaly.test").check_password("demo-pass-123")


def test_seed_demo_offline_leaves_couriers_off_shift() -> None:
    _seed("--offline")
    assert not CourierState.objects.filter(is_online=True).exists()
    assert CourierState.objects.exclude(lat=None).count() == 3
