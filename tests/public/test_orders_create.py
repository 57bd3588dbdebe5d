"""``POST /api/orders``: the order it creates, its events, prices and who may call it."""

from __future__ import annotations

import re

import pytest
from django.test import override_settings

from lokaly_core.catalog.models import Product
from lokaly_core.events.contracts import format_timestamp
from lokaly_core.inventory.models import Stock
from lokaly_core.orders.models import Order, OrderLine, OrderStatusChange
from lokaly_core.outbox.models import OutboxEvent
from tests.conftest import client_for, order_body, stream_envelopes, wait_until
from tests.public.conftest import ISO_UTC, assert_error

ORDERS = "/api/orders"


def test_create_order_answers_201_with_the_order_in_the_contract_shape(
    customer_client, customer, store, stocked
):
    # given
    milk = stocked(price_cents=129, name="Milk 1L")
    bread = stocked(price_cents=249, name="Bread")
    body = order_body(store.id, (milk.product_id, 2), (bread.product_id, 1), note="Ring twice")

    # when
    response = customer_client.post(ORDERS, body)

    # then
    assert response.status_code == 201, response.content
    data = response.json()
    order = Order.objects.get()
    assert data == {
        "id": str(order.id),
        "number": order.number,
        "status": "pending",
        "status_version": 1,
        "store_id": str(store.id),
        "customer_id": str(customer.id),
        "items": [
            {
                "product_id": str(milk.product_id), "name": "Milk 1L", "quantity": 2,
                "unit_price_cents": 129, "line_total_cents": 258,
            },
            {
                "product_id": str(bread.product_id), "name": "Bread", "quantity": 1,
                "unit_price_cents": 249, "line_total_cents": 249,
            },
        ],
        "subtotal_cents": 507,
        "delivery_fee_cents": 199,
        "total_cents": 706,
        "currency": "EUR",
        "delivery_address": {**body["delivery_address"], "line2": ""},
        "note": "Ring twice",
        "cancel_reason": None,
        "delivery": None,
        "created_at": format_timestamp(order.created_at),
        "updated_at": format_timestamp(order.updated_at),
    }
    assert re.fullmatch(r"LK-\d{6}", data["number"])
    assert ISO_UTC.match(data["created_at"])
    assert data["created_at"] == data["updated_at"]


def test_created_order_reads_back_identically(customer_client, store, stocked):
    stock = stocked()
    created = customer_client.post(ORDERS, order_body(store.id, (stock.product_id, 3))).json()

    fetched = customer_client.get(f"{ORDERS}/{created['id']}")

    assert fetched.status_code == 200
    assert fetched.json() == created


def test_create_order_stores_lines_and_the_first_history_row(customer_client, store, stocked):
    stock = stocked(price_cents=300)

    response = customer_client.post(ORDERS, order_body(store.id, (stock.product_id, 2)))

    order = Order.objects.get(pk=response.json()["id"])
    assert (order.subtotal_cents, order.delivery_fee_cents, order.total_cents) == (600, 199, 799)
    assert list(OrderLine.objects.values_list("product_id", "quantity", "unit_price_cents")) == [
        (stock.product_id, 2, 300)
    ]
    assert list(
        OrderStatusChange.objects.values_list("status", "previous_status", "status_version")
    ) == [("pending", None, 1)]


def test_create_order_numbers_are_unique_and_increasing(customer_client, store, stocked):
    stock = stocked()

    numbers = [
        customer_client.post(ORDERS, order_body(store.id, (stock.product_id, 1))).json()["number"]
        for _ in range(3)
    ]

    assert len(set(numbers)) == 3
    assert numbers == sorted(numbers)


def test_create_order_does_not_reserve_stock_itself(customer_client, store, stocked):
    stock = stocked(on_hand=5)

    customer_client.post(ORDERS, order_body(store.id, (stock.product_id, 2)))

    stock.refresh_from_db()
    assert (stock.on_hand, stock.reserved) == (5, 0)


def test_create_order_accepts_more_than_is_in_stock_and_leaves_it_to_the_worker(
    customer_client, store, stocked
):
    # stock is reserved asynchronously; the worker cancels it "out_of_stock" if short
    stock = stocked(on_hand=1)

    response = customer_client.post(ORDERS, order_body(store.id, (stock.product_id, 5)))

    assert response.status_code == 201
    assert response.json()["status"] == "pending"


def test_create_order_snapshots_prices_and_names(customer_client, store, stocked):
    # given an order for a product at 129
    stock = stocked(price_cents=129, name="Milk 1L")
    created = customer_client.post(ORDERS, order_body(store.id, (stock.product_id, 2))).json()

    # when the product changes afterwards
    Product.objects.filter(pk=stock.product_id).update(price_cents=999, name="Oat milk 1L")

    # then the order still shows what was bought, at what price
    fetched = customer_client.get(f"{ORDERS}/{created['id']}").json()
    assert fetched["items"][0]["name"] == "Milk 1L"
    assert fetched["items"][0]["unit_price_cents"] == 129
    assert fetched["items"][0]["line_total_cents"] == 258
    assert fetched["total_cents"] == 258 + 199
    assert fetched == created


def test_create_order_records_an_order_created_event_in_the_outbox(
    customer_client, customer, store, stocked
):
    first, second = stocked(), stocked()

    response = customer_client.post(
        ORDERS, order_body(store.id, (first.product_id, 2), (second.product_id, 1))
    )

    order = response.json()
    event = OutboxEvent.objects.get()
    assert event.type == "order.created"
    assert str(event.aggregate_id) == order["id"]
    assert event.published_at is None  # published after commit; this test never commits
    assert {k: v for k, v in event.payload.items() if k != "lines"} == {
        "order_id": order["id"],
        "number": order["number"],
        "customer_id": str(customer.id),
        "store_id": str(store.id),
        "total_cents": order["total_cents"],
        "currency": "EUR",
    }
    assert sorted(event.payload["lines"], key=lambda line: str(line["product_id"])) == sorted(
        [
            {"product_id": str(first.product_id), "quantity": 2},
            {"product_id": str(second.product_id), "quantity": 1},
        ],
        key=lambda line: str(line["product_id"]),
    )


@pytest.mark.django_db(transaction=True)
def test_create_order_publishes_order_created_on_the_stream_after_commit(
    customer_client, store, stocked
):
    stock = stocked()

    response = customer_client.post(ORDERS, order_body(store.id, (stock.product_id, 1)))

    order_id = response.json()["id"]
    created = wait_until(
        lambda: [e for e in stream_envelopes() if e.type == "order.created"]
    )
    assert len(created) == 1
    assert str(created[0].aggregate_id) == order_id
    assert created[0].payload["order_id"] == order_id
    row = OutboxEvent.objects.get()
    assert row.event_id == created[0].event_id
    # the row is marked published just after the XADD: poll, the stream may be first
    assert wait_until(lambda: OutboxEvent.objects.filter(published_at__isnull=False).exists())


def test_create_order_takes_the_delivery_fee_from_settings(customer_client, store, stocked):
    stock = stocked(price_cents=100)

    with override_settings(DELIVERY_FEE_CENTS=0):
        response = customer_client.post(ORDERS, order_body(store.id, (stock.product_id, 1)))

    assert response.json()["delivery_fee_cents"] == 0
    assert response.json()["total_cents"] == 100


def test_create_order_query_count_does_not_grow_with_items(
    customer, store, stocked, django_assert_max_num_queries
):
    client = client_for(customer)
    stocks = [stocked() for _ in range(10)]
    body = order_body(store.id, *[(s.product_id, 1) for s in stocks])

    # user, store with offers, number, order, lines, history, outbox; plus a savepoint and
    # its release, because the test's own transaction makes the unit of work nest
    with django_assert_max_num_queries(9):
        response = client.post(ORDERS, body)

    assert response.status_code == 201


def test_a_courier_may_not_place_an_order(courier_client, store, stocked):
    stock = stocked()

    response = courier_client.post(ORDERS, order_body(store.id, (stock.product_id, 1)))

    assert_error(response, 403, "permission_denied")
    assert Order.objects.count() == 0
    assert OutboxEvent.objects.count() == 0


def test_placing_an_order_needs_a_token(api_client, store, stocked):
    stock = stocked()

    response = api_client.post(ORDERS, order_body(store.id, (stock.product_id, 1)))

    assert_error(response, 401, "not_authenticated")
    assert Order.objects.count() == 0


def test_stock_is_untouched_by_a_refused_order(customer_client, store, stocked):
    stock = stocked(on_hand=3)

    customer_client.post(ORDERS, order_body(store.id, (stock.product_id, 100)))

    assert Stock.objects.get(pk=stock.pk).reserved == 0
    assert Order.objects.count() == 0
