"""v1.1: ``POST /api/courier/shift {"online": false}`` with an assigned delivery releases it."""

from __future__ import annotations

import pytest
from django.utils import timezone

from lokaly_core.delivery.models import CourierState, Delivery, DispatchTask
from lokaly_core.domain.delivery import delivery_pickup
from lokaly_core.domain.model.orders import OrderStatus
from lokaly_core.domain.picking import order_advance_to
from lokaly_core.orders.uow import DjangoUnitOfWork
from lokaly_core.outbox.models import OutboxEvent
from tests.factories import courier_on_shift, dispatch_confirmed

SHIFT = "/api/courier/shift"


@pytest.fixture
def delivery(courier, customer, place, stocked):
    courier_on_shift(courier)
    stock = stocked(on_hand=10)
    order = place(customer, (stock.product_id, 1))
    return dispatch_confirmed(order.id)


def _declined_events(delivery: Delivery) -> list[dict]:
    return list(
        OutboxEvent.objects.filter(type="delivery.declined", aggregate_id=delivery.order_id)
        .values_list("payload", flat=True)
    )


def test_going_offline_releases_an_assigned_delivery(courier_client, courier, delivery):
    response = courier_client.post(SHIFT, {"online": False}, format="json")

    assert response.status_code == 200
    assert response.json() == {"online": False}
    row = Delivery.objects.get(pk=delivery.pk)
    assert row.status == "declined" and row.ended_at is not None
    state = CourierState.objects.get(pk=courier.id)
    assert (state.is_online, state.current_delivery_id) == (False, None)
    task = DispatchTask.objects.get(pk=delivery.order_id)
    assert task.next_attempt_at <= timezone.now()
    assert _declined_events(delivery) == [
        {
            "delivery_id": str(delivery.id),
            "order_id": str(delivery.order_id),
            "courier_id": str(courier.id),
            "reason": "courier_offline",
        }
    ]
    assert not OutboxEvent.objects.filter(
        type="courier.available", aggregate_id=courier.id, payload__reason="declined"
    ).exists()


def test_going_offline_keeps_a_delivery_already_picked_up(courier_client, courier, delivery):
    clock = timezone.now
    order_advance_to(
        uow=DjangoUnitOfWork(), clock=clock, order_id=delivery.order_id, target=OrderStatus.READY
    )
    delivery_pickup(
        uow=DjangoUnitOfWork(), clock=clock, delivery_id=delivery.id, courier_id=courier.id
    )

    response = courier_client.post(SHIFT, {"online": False}, format="json")

    assert response.json() == {"online": False}
    assert Delivery.objects.get(pk=delivery.pk).status == "picked_up"
    assert CourierState.objects.get(pk=courier.id).current_delivery_id == delivery.id
    assert _declined_events(delivery) == []
    assert not DispatchTask.objects.exists()
