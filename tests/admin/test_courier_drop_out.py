"""v1.1: deactivating a courier (admin API) releases a delivery assigned and not picked up."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from lokaly_core.accounts.models import Role
from lokaly_core.accounts.tokens import ADMIN, issue_pair
from lokaly_core.delivery.models import CourierState, Delivery, DispatchTask
from lokaly_core.outbox.models import OutboxEvent
from tests.factories import StockFactory, UserFactory, courier_on_shift, dispatch_confirmed


@pytest.fixture
def admin(db: None) -> APIClient:
    client = APIClient()
    user = UserFactory.create(role=Role.ADMIN)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_pair(ADMIN, user)['access']}")
    return client


def test_deactivating_a_courier_releases_their_assigned_delivery(
    admin: APIClient, make_order: Any
) -> None:
    # given a courier with an assigned delivery
    courier = courier_on_shift()
    order = make_order(StockFactory.create(on_hand=5), 1, confirm=False)
    delivery = dispatch_confirmed(order.id)

    # when staff deactivate the courier
    response = admin.patch(f"/api/admin/couriers/{courier.id}", {"is_active": False}, format="json")

    # then the delivery is released and the order queued, due now, for another courier
    assert response.status_code == 200, response.content
    assert response.json()["is_active"] is False
    assert Delivery.objects.get(pk=delivery.pk).status == "declined"
    assert CourierState.objects.get(pk=courier.id).current_delivery_id is None
    assert DispatchTask.objects.filter(pk=order.id).exists()
    payloads = OutboxEvent.objects.filter(type="delivery.declined", aggregate_id=order.id)
    assert [p["reason"] for p in payloads.values_list("payload", flat=True)] == [
        "courier_deactivated"
    ]
