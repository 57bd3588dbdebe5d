"""``GET /api/stores`` and ``GET /api/stores/{id}/products?search=``."""

from __future__ import annotations

import base64
import uuid

import pytest

from lokaly_core.catalog.models import Product, Store
from tests.factories import ProductFactory, StockFactory, StoreFactory
from tests.public.conftest import assert_error


def _products_url(store) -> str:
    return f"/api/stores/{store.id}/products"


# --- stores -----------------------------------------------------------------------------

# What v1.1 adds to every store (docs/api.md), as a store that sets none of it has them.
V1_1_DEFAULTS = {"opening_hours": None, "timezone": "UTC", "delivery_radius_m": None}


def test_stores_lists_only_active_stores_in_the_contract_shape(customer_client, db):
    open_store = StoreFactory.create(name="A Centrum", address="Dam 1", lat=52.373, lng=4.893)
    closed_store = StoreFactory.create(name="B Noord", is_open=False)
    StoreFactory.create(name="C Gone", is_active=False)

    response = customer_client.get("/api/stores")

    assert response.status_code == 200
    assert response.json() == {
        "results": [
            {
                "id": str(open_store.id), "name": "A Centrum", "address": "Dam 1",
                "lat": 52.373, "lng": 4.893, "is_open": True,
                **V1_1_DEFAULTS,
            },
            {
                "id": str(closed_store.id), "name": "B Noord", "address": closed_store.address,
                "lat": 52.37, "lng": 4.89, "is_open": False,
                **V1_1_DEFAULTS,
            },
        ],
        "next": None,
        "previous": None,
    }


def test_couriers_may_list_stores(courier_client, store):
    response = courier_client.get("/api/stores")

    assert response.status_code == 200
    assert [s["id"] for s in response.json()["results"]] == [str(store.id)]


def test_stores_need_a_token(api_client, db):
    assert_error(api_client.get("/api/stores"), 401, "not_authenticated")


def test_stores_are_cursor_paginated(customer_client, db):
    stores = [StoreFactory.create(name=f"Store {i:02d}") for i in range(5)]

    first = customer_client.get("/api/stores", {"page_size": 2}).json()
    second = customer_client.get(first["next"]).json()
    third = customer_client.get(second["next"]).json()

    names = [s["name"] for page in (first, second, third) for s in page["results"]]
    assert names == [s.name for s in stores]
    assert third["next"] is None
    assert first["previous"] is None
    assert second["previous"] is not None


# --- products ---------------------------------------------------------------------------


def test_products_lists_active_products_the_store_carries_with_availability(
    customer_client, store
):
    # given two active products in the store, one inactive, and one only another store sells
    milk = StockFactory.create(
        store=store, on_hand=10, reserved=3,
        product=ProductFactory.create(sku="MILK-1L", name="Milk 1L", price_cents=129),
    )
    bread = StockFactory.create(
        store=store, on_hand=4, reserved=4,
        product=ProductFactory.create(sku="BREAD", name="Bread", price_cents=249),
    )
    old_stuff = ProductFactory.create(name="Old stuff", is_active=False)
    StockFactory.create(store=store, product=old_stuff)
    StockFactory.create(product=ProductFactory.create(name="Elsewhere"))

    # when
    response = customer_client.get(_products_url(store))

    # then
    assert response.status_code == 200
    assert response.json() == {
        "results": [
            {
                "id": str(bread.product_id), "sku": "BREAD", "name": "Bread",
                "price_cents": 249, "currency": "EUR", "available_quantity": 0,
            },
            {
                "id": str(milk.product_id), "sku": "MILK-1L", "name": "Milk 1L",
                "price_cents": 129, "currency": "EUR", "available_quantity": 7,
            },
        ],
        "next": None,
        "previous": None,
    }


def test_couriers_may_list_products(courier_client, stocked, store):
    stock = stocked()

    response = courier_client.get(_products_url(store))

    assert response.status_code == 200
    assert [p["id"] for p in response.json()["results"]] == [str(stock.product_id)]


@pytest.mark.parametrize(("search", "expected"), [
    ("milk", ["Chocolate milk", "Milk 1L"]),
    ("MILK 1", ["Milk 1L"]),
    ("  bread  ", ["Bread"]),
    ("sku-bread", ["Bread"]),  # the exact sku, in any case
    ("sku-", []),  # part of a sku is not enough
    ("caviar", []),
    ("", ["Bread", "Chocolate milk", "Milk 1L"]),
])
def test_products_search_by_name_or_sku(customer_client, store, search, expected):
    for sku, name in [("SKU-MILK", "Milk 1L"), ("SKU-CHOC", "Chocolate milk"),
                      ("SKU-BREAD", "Bread")]:
        StockFactory.create(store=store, product=ProductFactory.create(sku=sku, name=name))

    response = customer_client.get(_products_url(store), {"search": search})

    assert response.status_code == 200
    assert [p["name"] for p in response.json()["results"]] == expected


def test_products_search_with_a_nul_character_is_a_validation_error(customer_client, store):
    response = customer_client.get(_products_url(store), {"search": "milk\x00"})

    details = assert_error(response, 400, "validation_error")
    assert details == {"search": ["Null characters are not allowed."]}


def test_products_of_an_inactive_store_are_not_found(customer_client, stocked, store):
    stocked()
    Store.objects.filter(pk=store.pk).update(is_active=False)

    assert_error(customer_client.get(_products_url(store)), 404, "not_found")


@pytest.mark.parametrize("store_id", [str(uuid.uuid4()), "not-a-uuid"])
def test_products_of_an_unknown_store_are_not_found(customer_client, db, store_id):
    response = customer_client.get(f"/api/stores/{store_id}/products")

    assert_error(response, 404, "not_found")


def test_products_reflect_price_and_activity_changes(customer_client, stocked, store):
    stock = stocked(price_cents=100)
    Product.objects.filter(pk=stock.product_id).update(price_cents=150)

    assert customer_client.get(_products_url(store)).json()["results"][0]["price_cents"] == 150
    Product.objects.filter(pk=stock.product_id).update(is_active=False)
    assert customer_client.get(_products_url(store)).json()["results"] == []


def test_products_are_cursor_paginated_without_repeats(customer_client, store):
    expected = [
        StockFactory.create(store=store, product=ProductFactory.create(name="Same name"))
        for _ in range(7)
    ]

    seen, url = [], _products_url(store) + "?page_size=3"
    while url:
        page = customer_client.get(url).json()
        seen += [p["id"] for p in page["results"]]
        url = page["next"]

    assert sorted(seen) == sorted(str(s.product_id) for s in expected)
    assert len(seen) == len(set(seen)) == 7


@pytest.mark.parametrize("position", ["p=\x00", "p=a%00b", "o=abc", "r=1&p=x"])
def test_a_forged_cursor_is_not_found_rather_than_a_server_error(customer_client, store, position):
    cursor = base64.b64encode(position.encode()).decode()

    for url in ["/api/stores", _products_url(store)]:
        response = customer_client.get(url, {"cursor": cursor})
        assert response.status_code in (200, 404), response.content
        if response.status_code == 404:
            assert_error(response, 404, "not_found")
