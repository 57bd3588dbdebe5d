"""``Idempotency-Key`` on ``POST /api/orders``: replay, conflict, validity, scope."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection

from lokaly_core.catalog.models import Store
from lokaly_core.orders.models import IdempotencyKey, Order
from lokaly_core.outbox.models import OutboxEvent
from tests.conftest import client_for, order_body
from tests.public.conftest import assert_error

ORDERS = "/api/orders"


def test_the_same_key_and_body_replay_the_first_response_and_create_nothing(
    customer_client, store, stocked
):
    # given an order placed with a key
    stock = stocked()
    body = order_body(store.id, (stock.product_id, 2))
    first = customer_client.post(ORDERS, body, HTTP_IDEMPOTENCY_KEY="order-7f3a")
    assert first.status_code == 201

    # when the client retries it
    again = customer_client.post(ORDERS, body, HTTP_IDEMPOTENCY_KEY="order-7f3a")

    # then the same answer, and still one order and one event
    assert again.status_code == 201
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first
    assert Order.objects.count() == 1
    assert OutboxEvent.objects.count() == 1
    assert IdempotencyKey.objects.count() == 1


def test_a_replay_ignores_key_order_and_whitespace_of_the_json(customer_client, store, stocked):
    stock = stocked()
    body = order_body(store.id, (stock.product_id, 2))
    customer_client.post(ORDERS, body, HTTP_IDEMPOTENCY_KEY="k-1")
    reordered = json.dumps(dict(reversed(list(body.items()))), indent=2)

    again = customer_client.post(
        ORDERS, reordered, content_type="application/json", HTTP_IDEMPOTENCY_KEY="k-1"
    )

    assert again.status_code == 201
    assert Order.objects.count() == 1


def test_a_replay_returns_the_first_response_even_after_the_order_changed(
    customer_client, store, stocked
):
    stock = stocked()
    body = order_body(store.id, (stock.product_id, 1))
    first = customer_client.post(ORDERS, body, HTTP_IDEMPOTENCY_KEY="k-1").json()
    customer_client.post(f"{ORDERS}/{first['id']}/cancel")

    again = customer_client.post(ORDERS, body, HTTP_IDEMPOTENCY_KEY="k-1")

    assert again.status_code == 201
    assert again.json() == first
    assert Order.objects.get().status == "cancelled"


@pytest.mark.django_db(transaction=True)
def test_concurrent_retries_with_one_key_create_one_order(customer, store, stocked):
    # given four retries of one request, sent at the same moment
    body = order_body(store.id, (stocked().product_id, 1))
    start = threading.Barrier(4)

    def send(_: int):
        client = client_for(customer)
        start.wait()
        try:
            return client.post(ORDERS, body, HTTP_IDEMPOTENCY_KEY="k-1")
        finally:
            connection.close()

    # when
    with ThreadPoolExecutor(max_workers=4) as pool:
        responses = list(pool.map(send, range(4)))

    # then one order, and every retry got its response: the first's status and whole body,
    # the three replays saying so
    assert [r.status_code for r in responses] == [201] * 4
    assert len({r.json()["id"] for r in responses}) == 1
    assert all(r.json() == responses[0].json() for r in responses)
    assert sum(r.has_header("Idempotent-Replayed") for r in responses) == 3
    replayed = sorted(r.get("Idempotent-Replayed", "") for r in responses)
    assert replayed == ["", "true", "true", "true"]
    assert Order.objects.count() == 1
    assert OutboxEvent.objects.filter(type="order.created").count() == 1


def test_the_same_key_with_another_body_is_an_idempotency_conflict(
    customer_client, store, stocked
):
    stock = stocked()
    customer_client.post(
        ORDERS, order_body(store.id, (stock.product_id, 1)), HTTP_IDEMPOTENCY_KEY="k-1"
    )

    response = customer_client.post(
        ORDERS, order_body(store.id, (stock.product_id, 5)), HTTP_IDEMPOTENCY_KEY="k-1"
    )

    details = assert_error(response, 409, "idempotency_conflict")
    assert details == {"idempotency_key": "k-1"}
    assert list(Order.objects.values_list("lines__quantity", flat=True)) == [1]
    assert OutboxEvent.objects.count() == 1


def test_keys_belong_to_one_customer(
    customer_client, other_customer_client, customer, other_customer, store, stocked
):
    # given a customer's order with a key
    stock = stocked()
    body = order_body(store.id, (stock.product_id, 1))
    mine = customer_client.post(ORDERS, body, HTTP_IDEMPOTENCY_KEY="k-1").json()

    # when another customer sends the same key and body
    response = other_customer_client.post(ORDERS, body, HTTP_IDEMPOTENCY_KEY="k-1")

    # then they get an order of their own
    assert response.status_code == 201
    theirs = response.json()
    assert theirs["id"] != mine["id"]
    assert theirs["customer_id"] == str(other_customer.id)
    assert Order.objects.filter(customer=customer).count() == 1
    assert Order.objects.filter(customer=other_customer).count() == 1
    assert OutboxEvent.objects.count() == 2


def test_a_request_without_a_key_is_never_replayed(customer_client, store, stocked):
    stock = stocked()
    body = order_body(store.id, (stock.product_id, 1))

    customer_client.post(ORDERS, body)
    customer_client.post(ORDERS, body)

    assert Order.objects.count() == 2
    assert IdempotencyKey.objects.count() == 0


def test_a_key_whose_request_was_refused_can_be_used_again(customer_client, store, stocked):
    # given a request the domain refused (the store was closed for good)
    stock = stocked()
    body = order_body(store.id, (stock.product_id, 1))
    Store.objects.filter(pk=store.pk).update(is_active=False)
    refused = customer_client.post(ORDERS, body, HTTP_IDEMPOTENCY_KEY="k-1")
    assert_error(refused, 400, "validation_error")
    assert IdempotencyKey.objects.count() == 0

    # when the store is back and the client retries with the same key
    Store.objects.filter(pk=store.pk).update(is_active=True)
    response = customer_client.post(ORDERS, body, HTTP_IDEMPOTENCY_KEY="k-1")

    # then the order is placed
    assert response.status_code == 201
    assert Order.objects.count() == 1


@pytest.mark.parametrize(
    "key",
    ["", "k" * 256, "bell\x07", "tab\tkey", "new\nline", "del\x7f", "clé", "emoji-🛒"],
    ids=["empty", "256 chars", "BEL", "tab", "newline", "DEL", "non-ascii", "emoji"],
)
def test_an_invalid_key_is_a_validation_error_and_creates_nothing(
    customer_client, store, stocked, key
):
    stock = stocked()

    response = customer_client.post(
        ORDERS, order_body(store.id, (stock.product_id, 1)), HTTP_IDEMPOTENCY_KEY=key
    )

    details = assert_error(response, 400, "validation_error")
    assert details == {"Idempotency-Key": ["Use 1 to 255 printable ASCII characters."]}
    assert Order.objects.count() == 0
    assert OutboxEvent.objects.count() == 0
    assert IdempotencyKey.objects.count() == 0


@pytest.mark.parametrize(
    "key", ["k", "k" * 255, "0b6f1c9e-3c57-4a5e-9d0e-6c6a1b2f8e21", "!~{}", "order 42 retry"]
)
def test_a_valid_key_of_1_to_255_printable_characters_is_accepted(
    customer_client, store, stocked, key
):
    stock = stocked()

    response = customer_client.post(
        ORDERS, order_body(store.id, (stock.product_id, 1)), HTTP_IDEMPOTENCY_KEY=key
    )

    assert response.status_code == 201
    assert IdempotencyKey.objects.get().key == key


def test_an_invalid_body_with_a_key_stores_no_key(customer_client, store, stocked):
    stock = stocked()
    body = order_body(store.id, (stock.product_id, 0))

    assert_error(
        customer_client.post(ORDERS, body, HTTP_IDEMPOTENCY_KEY="k-1"), 400, "validation_error"
    )

    assert IdempotencyKey.objects.count() == 0
