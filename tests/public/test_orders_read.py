"""``GET /api/orders`` (cursor-paginated), ``/api/orders/{id}`` and ``.../history``."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from lokaly_core.orders.models import Order
from lokaly_core.orders.selectors import order_to_dict
from tests.conftest import client_for
from tests.public.conftest import ISO_UTC, assert_error

ORDERS = "/api/orders"


@pytest.fixture
def product(stocked):
    return stocked(on_hand=1000).product_id


def _walk(client, url: str) -> tuple[list[str], int]:
    """Follow ``next`` from ``url``: (ids in the order seen, number of pages)."""
    ids: list[str] = []
    pages = 0
    while url:
        response = client.get(url)
        assert response.status_code == 200, response.content
        body = response.json()
        assert set(body) == {"results", "next", "previous"}
        ids += [o["id"] for o in body["results"]]
        pages += 1
        url = body["next"]
    return ids, pages


# --- list -------------------------------------------------------------------------------


def test_list_returns_the_callers_orders_newest_first(
    customer_client, customer, other_customer, place, product
):
    older = place(customer, (product, 1))
    place(other_customer, (product, 1))
    newer = place(customer, (product, 2))

    response = customer_client.get(ORDERS)

    assert response.status_code == 200
    assert response.json() == {
        "results": [order_to_dict(newer), order_to_dict(older)],
        "next": None,
        "previous": None,
    }


def test_list_is_empty_for_a_new_customer(customer_client, db):
    response = customer_client.get(ORDERS)

    assert response.json() == {"results": [], "next": None, "previous": None}


def test_list_pages_hold_20_by_default_and_next_walks_all_without_repeats(
    customer_client, customer, place, product
):
    placed = [place(customer, (product, 1)) for _ in range(45)]

    first = customer_client.get(ORDERS).json()
    ids, pages = _walk(customer_client, f"http://testserver{ORDERS}")

    assert len(first["results"]) == 20
    assert first["previous"] is None
    assert pages == 3
    assert len(ids) == len(set(ids)) == 45
    assert ids == [str(o.id) for o in reversed(placed)]


def test_list_page_size_is_honoured(customer_client, customer, place, product):
    for _ in range(7):
        place(customer, (product, 1))

    ids, pages = _walk(customer_client, f"{ORDERS}?page_size=3")

    assert pages == 3
    assert len(set(ids)) == 7


def test_list_page_size_is_capped_at_100(customer_client, customer, place, product):
    for _ in range(101):
        place(customer, (product, 1))

    body = customer_client.get(ORDERS, {"page_size": 1000}).json()

    assert len(body["results"]) == 100
    assert body["next"] is not None
    assert len(customer_client.get(body["next"]).json()["results"]) == 1


@pytest.mark.parametrize("page_size", ["abc", "0", "-5", ""])
def test_list_falls_back_to_20_for_a_meaningless_page_size(
    customer_client, customer, place, product, page_size
):
    for _ in range(21):
        place(customer, (product, 1))

    body = customer_client.get(ORDERS, {"page_size": page_size}).json()

    assert len(body["results"]) == 20


def test_list_pages_do_not_repeat_orders_created_at_the_same_instant(
    customer_client, customer, place, product
):
    # given 25 orders sharing one created_at: the cursor must break the tie
    for _ in range(25):
        place(customer, (product, 1))
    Order.objects.update(created_at=datetime(2026, 11, 27, 10, 15, tzinfo=UTC))

    ids, pages = _walk(customer_client, f"{ORDERS}?page_size=10")

    assert pages == 3
    assert len(ids) == len(set(ids)) == 25


def test_list_previous_leads_back_to_the_first_page(customer_client, customer, place, product):
    for _ in range(5):
        place(customer, (product, 1))
    first = customer_client.get(ORDERS, {"page_size": 2}).json()
    second = customer_client.get(first["next"]).json()

    back = customer_client.get(second["previous"]).json()

    assert [o["id"] for o in back["results"]] == [o["id"] for o in first["results"]]
    assert back["previous"] is None


@pytest.mark.parametrize("cursor", ["garbage", "cD1nYXJiYWdl", "cD0yMDI2LTEzLTQw", "cD1hJTAwYg=="])
def test_list_with_a_forged_cursor_is_not_found(customer_client, customer, place, product, cursor):
    # "p=garbage", "p=2026-13-40" and "p=a%00b" decode to positions no order can have
    place(customer, (product, 1))

    response = customer_client.get(ORDERS, {"cursor": cursor})

    assert_error(response, 404, "not_found")


def test_list_query_count_does_not_grow_with_the_page(
    customer, place, product, django_assert_max_num_queries
):
    client = client_for(customer)
    for _ in range(20):
        place(customer, (product, 3))

    # user, orders, their lines, their current deliveries
    with django_assert_max_num_queries(4):
        response = client.get(ORDERS)

    assert len(response.json()["results"]) == 20


def test_a_courier_may_not_list_orders(courier_client, db):
    assert_error(courier_client.get(ORDERS), 403, "permission_denied")


def test_listing_orders_needs_a_token(api_client, db):
    assert_error(api_client.get(ORDERS), 401, "not_authenticated")


# --- one order --------------------------------------------------------------------------


def test_get_returns_the_callers_order(customer_client, customer, place, product):
    order = place(customer, (product, 2), note="Leave at the door")

    response = customer_client.get(f"{ORDERS}/{order.id}")

    assert response.status_code == 200
    body = response.json()
    assert body == order_to_dict(order)
    assert body["note"] == "Leave at the door"
    assert ISO_UTC.match(body["created_at"]) and ISO_UTC.match(body["updated_at"])


def test_another_customers_order_is_not_found(customer_client, other_customer, place, product):
    theirs = place(other_customer, (product, 1))

    assert_error(customer_client.get(f"{ORDERS}/{theirs.id}"), 404, "not_found")
    assert_error(customer_client.get(f"{ORDERS}/{theirs.id}/history"), 404, "not_found")


@pytest.mark.parametrize("order_id", [str(uuid.uuid4()), "LK-000001", "123"])
def test_an_unknown_order_is_not_found(customer_client, db, order_id):
    assert_error(customer_client.get(f"{ORDERS}/{order_id}"), 404, "not_found")
    assert_error(customer_client.get(f"{ORDERS}/{order_id}/history"), 404, "not_found")


def test_a_courier_may_not_read_an_order(courier_client, customer, place, product):
    order = place(customer, (product, 1))

    assert_error(courier_client.get(f"{ORDERS}/{order.id}"), 403, "permission_denied")
    assert_error(courier_client.get(f"{ORDERS}/{order.id}/history"), 403, "permission_denied")


# --- history ----------------------------------------------------------------------------


def test_history_of_a_new_order_is_its_pending_row(customer_client, customer, place, product):
    order = place(customer, (product, 1))

    response = customer_client.get(f"{ORDERS}/{order.id}/history")

    assert response.status_code == 200
    assert response.json() == [
        {
            "status": "pending",
            "previous_status": None,
            "status_version": 1,
            "occurred_at": order_to_dict(order)["created_at"],
            "reason": None,
        }
    ]
