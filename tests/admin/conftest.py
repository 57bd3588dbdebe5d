"""Fixtures of the admin server's tests (run with lokaly_admin.settings.test)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from lokaly_core.accounts.models import Role, User
from lokaly_core.domain.model import orders as o
from lokaly_core.domain.services import ItemRequest, PlaceOrder, order_reserve_stock, place_order
from lokaly_core.orders.models import Order
from lokaly_core.orders.uow import DjangoUnitOfWork
from tests.admin.browser import ChromiumUnavailable, ensure_chromium
from tests.factories import UserFactory

DELIVERY_ADDRESS = o.Address(
    line1="Keizersgracht 1", city="Amsterdam", postal_code="1015 CJ", lat=52.37, lng=4.89
)


@pytest.fixture
def staff_admin(db: None) -> User:
    return UserFactory.create(role=Role.ADMIN)


@pytest.fixture
def staff_super_admin(db: None) -> User:
    return UserFactory.create(role=Role.SUPER_ADMIN)


@pytest.fixture
def site_client(staff_admin: User) -> Client:
    """A browser session of the Django admin site (``/admin/``), logged in as an admin."""
    client = Client()
    client.force_login(staff_admin)
    return client


@pytest.fixture
def make_order() -> Callable[..., Order]:
    """``make_order(stock, quantity=2, customer=None, confirm=True)``: an order placed, and
    (``confirm``) its stock reserved, through the domain services the API uses."""

    def make(
        stock: Any, quantity: int = 2, customer: User | None = None, *, confirm: bool = True
    ) -> Order:
        command = PlaceOrder(
            customer_id=(customer or UserFactory.create(role=Role.CUSTOMER)).id,
            store_id=stock.store_id,
            items=[ItemRequest(stock.product_id, quantity)],
            delivery_address=DELIVERY_ADDRESS,
        )
        order = place_order(
            uow=DjangoUnitOfWork(), clock=timezone.now, command=command, delivery_fee_cents=199
        )
        if confirm:
            order_reserve_stock(uow=DjangoUnitOfWork(), clock=timezone.now, order_id=order.id)
        return Order.objects.get(pk=order.id)

    return make


@pytest.fixture(scope="session")
def chromium() -> str:
    """Path of the machine's Chromium, installed from Debian's packages when missing.

    Skips where none can be installed; in CI (``CI`` set, as ``.ci/run`` does) that is a
    failure instead, so a broken install cannot pass as a skipped browser test.
    """
    try:
        path, seconds = ensure_chromium()
    except ChromiumUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI needs Chromium for the browser tests: {exc}")
        pytest.skip(f"no Chromium for the browser tests: {exc}")
    if seconds:
        _BROWSER_NOTES.append(f"installed {path} from the OS packages in {seconds:.1f} s")
    return path


_BROWSER_NOTES: list[str] = []


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Says when the run had to install Chromium (and how long that took)."""
    for note in _BROWSER_NOTES:
        terminalreporter.write_line(f"browser tests: {note}")
