"""Fixtures and helpers of the public API tests."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from lokaly_core.accounts.models import Role, User
from lokaly_core.domain.model import orders as o
from lokaly_core.domain.services import ItemRequest, PlaceOrder, place_order
from lokaly_core.orders.models import Order
from lokaly_core.orders.uow import DjangoUnitOfWork
from tests.conftest import client_for
from tests.factories import UserFactory

ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")
ERROR_CODES = {
    "validation_error", "malformed_request", "not_authenticated", "token_invalid",
    "permission_denied", "not_found", "method_not_allowed", "invalid_transition",
    "insufficient_stock", "idempotency_conflict", "conflict", "unsupported_media_type",
    "rate_limited", "unavailable",
    "store_closed", "too_many_open_orders",  # v1.1
}
ADDRESS = {"line1": "Keizersgracht 1", "city": "Amsterdam", "postal_code": "1015 CJ"}


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    """Assert the contract's error envelope with this status and code; return its details."""
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"code", "message", "details"}, error
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["details"], dict)
    return error["details"]


@pytest.fixture
def other_customer(db: None) -> User:
    return UserFactory.create(role=Role.CUSTOMER)


@pytest.fixture
def other_customer_client(other_customer: User) -> APIClient:
    return client_for(other_customer)


@pytest.fixture
def staff_user(db: None) -> User:
    return UserFactory.create(role=Role.ADMIN)


@pytest.fixture
def place(store: Any) -> Callable[..., Order]:
    """``place(customer, (product_id, qty), ...)``: an order placed through the service."""

    def make(customer: User, *items: tuple[Any, int], note: str = "", on: Any = None) -> Order:
        command = PlaceOrder(
            customer_id=customer.id,
            store_id=(on or store).id,
            items=[ItemRequest(product_id, quantity) for product_id, quantity in items],
            delivery_address=o.Address(**ADDRESS, lat=52.37, lng=4.89),
            note=note,
        )
        order = place_order(
            uow=DjangoUnitOfWork(), clock=timezone.now, command=command, delivery_fee_cents=199
        )
        return Order.objects.get(pk=order.id)

    return make
