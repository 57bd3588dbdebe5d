"""The courier's deliveries: list, pickup, complete, decline (and the order's ``delivery``)."""

from __future__ import annotations

import uuid

import pytest
from django.utils import timezone

from lokaly_core.delivery.models import CourierState, Delivery, DispatchTask
from lokaly_core.domain.delivery import DispatchPolicy, dispatch_order
from lokaly_core.domain.model.orders import OrderStatus
from lokaly_core.domain.picking import order_advance_to
from lokaly_core.inventory.models import Stock
from lokaly_core.orders.models import Order, OrderStatusChange
from lokaly_core.orders.uow import DjangoUnitOfWork
from lokaly_core.outbox.models import OutboxEvent
from tests.conftest import client_for
from tests.factories import courier_on_shift, dispatch_confirmed
from tests.public.conftest import ISO_UTC, assert_error

DELIVERIES = "/api/courier/deliveries"


@pytest.fixture
def stock(stocked):
    return stocked(on_hand=10)


@pytest.fixture
def on_shift(courier):
    return courier_on_shift(courier)


@pytest.fixture
def delivery(on_shift, customer, place, stock):
    """An order of 3 units of ``stock``, confirmed (3 reserved) and assigned to ``courier``."""
    order = place(customer, (stock.product_id, 3), note="Ring twice")
    return dispatch_confirmed(order.id)


def _ready(delivery: Delivery) -> None:
    order_advance_to(
        uow=DjangoUnitOfWork(), clock=timezone.now, order_id=delivery.order_id,
        target=OrderStatus.READY,
    )


def _act(client, delivery, action: str):
    return client.post(f"{DELIVERIES}/{delivery.id}/{action}")


def _levels(stock) -> tuple[int, int]:
    row = Stock.objects.get(pk=stock.pk)
    return row.on_hand, row.reserved


# -- list -----------------------------------------------------------------------------------


def test_list_shows_the_callers_active_delivery(courier_client, courier, customer, delivery, stock):
    response = courier_client.get(DELIVERIES)

    assert response.status_code == 200
    body = response.json()
    assert body["next"] is None and body["previous"] is None
    (row,) = body["results"]
    order = Order.objects.get(pk=delivery.order_id)
    store = stock.store
    assert row == {
        "id": str(delivery.id),
        "order_id": str(order.id),
        "order_number": order.number,
        "order_status": "confirmed",
        "status": "assigned",
        "store": {
            "id": str(store.id), "name": store.name, "address": store.address,
            "lat": store.lat, "lng": store.lng,
        },
        "delivery_address": order.delivery_address,
        "customer_name": customer.name,
        "note": "Ring twice",
        "items": [{"name": stock.product.name, "quantity": 3}],
        "assigned_at": row["assigned_at"],
        "picked_up_at": None,
        "delivered_at": None,
    }
    assert ISO_UTC.match(row["assigned_at"])


def test_list_is_empty_for_another_courier(delivery, db):
    other = client_for(courier_on_shift())

    assert other.get(DELIVERIES).json() == {"results": [], "next": None, "previous": None}


def test_list_drops_a_delivery_once_delivered(courier_client, delivery):
    _ready(delivery)
    _act(courier_client, delivery, "pickup")
    assert [r["status"] for r in courier_client.get(DELIVERIES).json()["results"]] == ["picked_up"]

    _act(courier_client, delivery, "complete")

    assert courier_client.get(DELIVERIES).json()["results"] == []


# -- pickup ---------------------------------------------------------------------------------


def test_pickup_before_the_order_is_ready_is_409_and_changes_nothing(
    courier_client, delivery, stock
):
    response = _act(courier_client, delivery, "pickup")

    details = assert_error(response, 409, "invalid_transition")
    assert details == {"delivery_status": "assigned", "order_status": "confirmed"}
    assert _levels(stock) == (10, 3)
    assert Delivery.objects.get(pk=delivery.pk).status == "assigned"
    assert Order.objects.get(pk=delivery.order_id).status == "confirmed"


def test_pickup_of_a_ready_order_takes_it_out_and_consumes_the_stock(
    courier_client, delivery, stock
):
    _ready(delivery)
    assert _levels(stock) == (10, 3)

    response = _act(courier_client, delivery, "pickup")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["id"] == str(delivery.id)
    assert body["status"] == "picked_up"
    assert body["order_status"] == "out_for_delivery"
    assert ISO_UTC.match(body["picked_up_at"])
    order = Order.objects.get(pk=delivery.order_id)
    assert order.status == "out_for_delivery"
    assert order.status_version == 5  # pending, confirmed, picking, ready, out_for_delivery
    assert _levels(stock) == (7, 0)
    assert OutboxEvent.objects.filter(aggregate_id=order.id, type="delivery.picked_up").count() == 1
    assert OrderStatusChange.objects.filter(order_id=order.id, status="out_for_delivery").exists()


def test_pickup_twice_is_409_and_consumes_once(courier_client, delivery, stock):
    _ready(delivery)
    _act(courier_client, delivery, "pickup")

    assert_error(_act(courier_client, delivery, "pickup"), 409, "invalid_transition")
    assert _levels(stock) == (7, 0)


# -- complete -------------------------------------------------------------------------------


def test_complete_delivers_the_order_and_frees_the_courier(courier_client, courier, delivery):
    _ready(delivery)
    _act(courier_client, delivery, "pickup")

    response = _act(courier_client, delivery, "complete")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "delivered"
    assert body["order_status"] == "delivered"
    assert ISO_UTC.match(body["delivered_at"])
    assert Order.objects.get(pk=delivery.order_id).status == "delivered"
    state = CourierState.objects.get(pk=courier.id)
    assert state.current_delivery_id is None
    assert state.is_online


def test_complete_before_pickup_is_409(courier_client, courier, delivery):
    _ready(delivery)

    assert_error(_act(courier_client, delivery, "complete"), 409, "invalid_transition")
    assert Order.objects.get(pk=delivery.order_id).status == "ready"
    assert CourierState.objects.get(pk=courier.id).current_delivery_id == delivery.id


# -- decline --------------------------------------------------------------------------------


def test_decline_before_pickup_frees_the_courier_and_requeues_the_order(
    courier_client, courier, delivery, stock
):
    response = _act(courier_client, delivery, "decline")

    assert response.status_code == 200, response.content
    assert response.json()["status"] == "declined"
    assert Delivery.objects.get(pk=delivery.pk).status == "declined"
    assert CourierState.objects.get(pk=courier.id).current_delivery_id is None
    assert DispatchTask.objects.filter(order_id=delivery.order_id).exists()
    assert Order.objects.get(pk=delivery.order_id).status == "confirmed"
    assert _levels(stock) == (10, 3)
    assert courier_client.get(DELIVERIES).json()["results"] == []


def test_a_declined_order_goes_to_another_free_courier(courier_client, courier, delivery):
    other = courier_on_shift()
    _act(courier_client, delivery, "decline")

    again = dispatch_order(
        uow=DjangoUnitOfWork(), clock=timezone.now, order_id=delivery.order_id,
        policy=DispatchPolicy(),
    )

    assert again.delivery is not None
    assert again.delivery.courier_id == other.id
    assert client_for(other).get(DELIVERIES).json()["results"][0]["order_id"] == str(
        delivery.order_id
    )


def test_decline_after_pickup_is_409(courier_client, courier, delivery):
    _ready(delivery)
    _act(courier_client, delivery, "pickup")

    assert_error(_act(courier_client, delivery, "decline"), 409, "invalid_transition")
    assert Delivery.objects.get(pk=delivery.pk).status == "picked_up"
    assert CourierState.objects.get(pk=courier.id).current_delivery_id == delivery.id


# -- who may ----------------------------------------------------------------------------------


@pytest.mark.parametrize("action", ["pickup", "complete", "decline"])
def test_another_couriers_delivery_is_not_found(delivery, action):
    _ready(delivery)
    other = client_for(courier_on_shift())

    assert_error(_act(other, delivery, action), 404, "not_found")
    assert Delivery.objects.get(pk=delivery.pk).status == "assigned"


@pytest.mark.parametrize("action", ["pickup", "complete", "decline"])
def test_an_unknown_delivery_is_not_found(courier_client, db, action):
    response = courier_client.post(f"{DELIVERIES}/{uuid.uuid4()}/{action}")

    assert_error(response, 404, "not_found")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/api/courier/shift"),
        ("post", "/api/courier/location"),
        ("get", DELIVERIES),
        ("post", f"{DELIVERIES}/{uuid.uuid4()}/pickup"),
        ("post", f"{DELIVERIES}/{uuid.uuid4()}/complete"),
        ("post", f"{DELIVERIES}/{uuid.uuid4()}/decline"),
    ],
)
def test_courier_endpoints_refuse_customers(customer_client, method, path):
    body = {"online": True, "lat": 1, "lng": 1}
    response = getattr(customer_client, method)(path, body, format="json")

    assert_error(response, 403, "permission_denied")


@pytest.mark.parametrize("path", ["/api/courier/shift", DELIVERIES])
def test_courier_endpoints_need_a_token(api_client, db, path):
    assert_error(api_client.get(path), 401, "not_authenticated")


def test_a_customer_may_not_act_on_a_delivery_even_of_their_order(customer_client, delivery):
    assert_error(_act(customer_client, delivery, "decline"), 403, "permission_denied")
    assert Delivery.objects.get(pk=delivery.pk).status == "assigned"


def test_a_courier_may_not_place_orders(courier_client, stock):
    body = {
        "store_id": str(stock.store_id),
        "items": [{"product_id": str(stock.product_id), "quantity": 1}],
        "delivery_address": {"line1": "x", "city": "y", "postal_code": "1", "lat": 1, "lng": 1},
    }

    assert_error(courier_client.post("/api/orders", body, format="json"), 403, "permission_denied")
    assert Order.objects.count() == 0


# -- the order's delivery -------------------------------------------------------------------


def test_the_customer_sees_the_courier_on_the_order(customer_client, courier, delivery):
    order_url = f"/api/orders/{delivery.order_id}"

    shown = customer_client.get(order_url).json()["delivery"]

    assert shown == {
        "id": str(delivery.id),
        "status": "assigned",
        "courier": {"id": str(courier.id), "name": courier.name},
        "assigned_at": shown["assigned_at"],
        "picked_up_at": None,
        "delivered_at": None,
    }
    assert ISO_UTC.match(shown["assigned_at"])
    assert customer_client.get("/api/orders").json()["results"][0]["delivery"] == shown


def test_the_orders_delivery_follows_pickup_and_completion(
    customer_client, courier_client, delivery
):
    order_url = f"/api/orders/{delivery.order_id}"
    _ready(delivery)
    picked = _act(courier_client, delivery, "pickup").json()
    assert customer_client.get(order_url).json()["delivery"]["picked_up_at"] == (
        picked["picked_up_at"]
    )

    done = _act(courier_client, delivery, "complete").json()

    shown = customer_client.get(order_url).json()["delivery"]
    assert shown["status"] == "delivered"
    assert shown["delivered_at"] == done["delivered_at"]


def test_an_order_without_a_courier_or_after_a_decline_has_no_delivery(
    customer_client, courier_client, customer, place, stock, delivery
):
    waiting = place(customer, (stock.product_id, 1))
    assert customer_client.get(f"/api/orders/{waiting.id}").json()["delivery"] is None

    _act(courier_client, delivery, "decline")

    assert customer_client.get(f"/api/orders/{delivery.order_id}").json()["delivery"] is None
