"""``POST /api/orders/{id}/cancel``: allowed while pending or confirmed; releases stock."""

from __future__ import annotations

import uuid

import pytest
from django.utils import timezone

from lokaly_core.domain.services import order_reserve_stock
from lokaly_core.inventory.models import Stock
from lokaly_core.orders.models import Order, OrderStatusChange
from lokaly_core.orders.uow import DjangoUnitOfWork
from lokaly_core.outbox.models import OutboxEvent
from tests.public.conftest import ISO_UTC, assert_error

ORDERS = "/api/orders"


def _cancel(client, order, **body):
    return client.post(f"{ORDERS}/{order.id}/cancel", body)


def _event_types(order) -> list[str]:
    return sorted(OutboxEvent.objects.filter(aggregate_id=order.id).values_list("type", flat=True))


def test_cancel_a_pending_order(customer_client, customer, place, stocked):
    # given
    stock = stocked(on_hand=5)
    order = place(customer, (stock.product_id, 2))

    # when
    response = _cancel(customer_client, order, reason="Ordered by mistake")

    # then the order comes back cancelled, one version later
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == str(order.id)
    assert body["status"] == "cancelled"
    assert body["status_version"] == 2
    assert body["cancel_reason"] == "Ordered by mistake"
    assert ISO_UTC.match(body["updated_at"])
    assert body["updated_at"] >= body["created_at"]
    assert body == customer_client.get(f"{ORDERS}/{order.id}").json()
    # the change is recorded and reported; nothing was reserved, so nothing is released
    assert _event_types(order) == ["order.cancelled", "order.created", "order.status_changed"]
    assert Stock.objects.get(pk=stock.pk).reserved == 0


def test_cancel_appends_to_the_history(customer_client, customer, place, stocked):
    order = place(customer, (stocked().product_id, 1))

    _cancel(customer_client, order, reason="Changed my mind")
    history = customer_client.get(f"{ORDERS}/{order.id}/history").json()

    assert [(h["status"], h["previous_status"], h["status_version"], h["reason"])
            for h in history] == [
        ("pending", None, 1, None),
        ("cancelled", "pending", 2, "Changed my mind"),
    ]
    assert all(ISO_UTC.match(h["occurred_at"]) for h in history)


def test_cancel_events_carry_the_change(customer_client, customer, place, stocked):
    order = place(customer, (stocked().product_id, 1))

    _cancel(customer_client, order, reason="Too slow")

    changed = OutboxEvent.objects.get(aggregate_id=order.id, type="order.status_changed")
    cancelled = OutboxEvent.objects.get(aggregate_id=order.id, type="order.cancelled")
    assert {k: changed.payload[k] for k in ("status", "previous_status", "status_version")} == {
        "status": "cancelled", "previous_status": "pending", "status_version": 2,
    }
    assert changed.payload["reason"] == "Too slow"
    assert cancelled.payload == {
        "order_id": str(order.id), "reason": "Too slow", "cancelled_by": "customer",
        "previous_status": "pending",
    }


@pytest.mark.parametrize("body", [{}, {"reason": ""}])
def test_cancel_without_a_reason_records_a_default_one(
    customer_client, customer, place, stocked, body
):
    order = place(customer, (stocked().product_id, 1))

    response = customer_client.post(f"{ORDERS}/{order.id}/cancel", body)

    assert response.status_code == 200
    assert response.json()["cancel_reason"] == "cancelled_by_customer"


def test_cancel_with_no_body_at_all(customer_client, customer, place, stocked):
    order = place(customer, (stocked().product_id, 1))

    response = customer_client.generic("POST", f"{ORDERS}/{order.id}/cancel")

    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"


def test_cancel_releases_reserved_stock(customer_client, customer, place, stocked):
    # given a confirmed order holding 3 of 10 and 1 of 4
    milk, bread = stocked(on_hand=10), stocked(on_hand=4)
    order = place(customer, (milk.product_id, 3), (bread.product_id, 1))
    order_reserve_stock(uow=DjangoUnitOfWork(), clock=timezone.now, order_id=order.id)
    assert Order.objects.get(pk=order.id).status == "confirmed"
    assert [Stock.objects.get(pk=s.pk).reserved for s in (milk, bread)] == [3, 1]

    # when the customer cancels
    response = _cancel(customer_client, order, reason="No longer needed")

    # then the reservation is released, the stock on hand untouched
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert response.json()["status_version"] == 3
    assert [(s.on_hand, s.reserved) for s in Stock.objects.filter(pk__in=[milk.pk, bread.pk])
            .order_by("on_hand")] == [(4, 0), (10, 0)]
    released = OutboxEvent.objects.get(aggregate_id=order.id, type="inventory.released")
    assert sorted((line["product_id"], line["quantity"]) for line in released.payload["lines"]) == \
        sorted([(str(milk.product_id), 3), (str(bread.product_id), 1)])
    assert released.payload["reason"] == "No longer needed"
    assert Order.objects.get(pk=order.id).stock_state == "released"


@pytest.mark.parametrize(
    "status", ["cancelled", "picking", "ready", "out_for_delivery", "delivered"]
)
def test_cancel_is_an_invalid_transition_past_confirmed(
    customer_client, customer, place, stocked, status
):
    # given an order moved on (set directly on the row)
    order = place(customer, (stocked().product_id, 1))
    Order.objects.filter(pk=order.pk).update(status=status, status_version=3)
    events_before = OutboxEvent.objects.count()

    # when
    response = _cancel(customer_client, order, reason="Too late")

    # then
    details = assert_error(response, 409, "invalid_transition")
    assert details == {"status": status, "requested": "cancelled"}
    row = Order.objects.get(pk=order.pk)
    assert (row.status, row.status_version, row.cancel_reason) == (status, 3, None)
    assert OrderStatusChange.objects.filter(order=order).count() == 1
    assert OutboxEvent.objects.count() == events_before


def test_cancelling_twice_is_an_invalid_transition(customer_client, customer, place, stocked):
    order = place(customer, (stocked().product_id, 1))
    assert _cancel(customer_client, order).status_code == 200

    response = _cancel(customer_client, order)

    assert assert_error(response, 409, "invalid_transition") == {
        "status": "cancelled", "requested": "cancelled",
    }
    assert Order.objects.get(pk=order.pk).status_version == 2


def test_cancel_of_a_picking_order_keeps_its_reservation(customer_client, customer, place, stocked):
    # given a confirmed order whose picking started
    stock = stocked(on_hand=10)
    order = place(customer, (stock.product_id, 2))
    order_reserve_stock(uow=DjangoUnitOfWork(), clock=timezone.now, order_id=order.id)
    Order.objects.filter(pk=order.pk).update(status="picking", status_version=3)

    # when
    response = _cancel(customer_client, order)

    # then
    assert_error(response, 409, "invalid_transition")
    assert Stock.objects.get(pk=stock.pk).reserved == 2
    assert not OutboxEvent.objects.filter(type="inventory.released").exists()


def test_cancel_of_another_customers_order_is_not_found_and_changes_nothing(
    customer_client, other_customer, place, stocked
):
    theirs = place(other_customer, (stocked().product_id, 1))

    response = _cancel(customer_client, theirs, reason="Mischief")

    assert_error(response, 404, "not_found")
    row = Order.objects.get(pk=theirs.pk)
    assert (row.status, row.status_version) == ("pending", 1)
    assert _event_types(theirs) == ["order.created"]


@pytest.mark.parametrize("order_id", [str(uuid.uuid4()), "not-a-uuid"])
def test_cancel_of_an_unknown_order_is_not_found(customer_client, db, order_id):
    response = customer_client.post(f"{ORDERS}/{order_id}/cancel", {})

    assert_error(response, 404, "not_found")


def test_a_courier_may_not_cancel(courier_client, customer, place, stocked):
    order = place(customer, (stocked().product_id, 1))

    assert_error(_cancel(courier_client, order), 403, "permission_denied")
    assert Order.objects.get(pk=order.pk).status == "pending"


def test_cancel_refuses_a_reason_over_300_characters(customer_client, customer, place, stocked):
    order = place(customer, (stocked().product_id, 1))

    response = _cancel(customer_client, order, reason="r" * 301)

    details = assert_error(response, 400, "validation_error")
    assert details == {"reason": ["Ensure this field has no more than 300 characters."]}
    assert Order.objects.get(pk=order.pk).status == "pending"


@pytest.mark.parametrize("reason", [None, ["why"], {"a": 1}])
def test_cancel_refuses_a_reason_that_is_not_a_string(
    customer_client, customer, place, stocked, reason
):
    order = place(customer, (stocked().product_id, 1))

    response = _cancel(customer_client, order, reason=reason)

    assert list(assert_error(response, 400, "validation_error")) == ["reason"]
    assert Order.objects.get(pk=order.pk).status == "pending"


def test_cancel_answers_only_to_post(customer_client, customer, place, stocked):
    order = place(customer, (stocked().product_id, 1))

    response = customer_client.get(f"{ORDERS}/{order.id}/cancel")

    assert_error(response, 405, "method_not_allowed")
