"""``POST /api/orders``: every rule of the contract's "Creating an order", and what it refuses.

Each refused request answers 400 ``validation_error`` with ``details`` naming the field
(dotted for nested ones, e.g. ``items.0.quantity``) and creates nothing.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from lokaly_core.catalog.models import Store
from lokaly_core.orders.models import IdempotencyKey, Order
from lokaly_core.outbox.models import OutboxEvent
from tests.conftest import order_body
from tests.factories import StockFactory, StoreFactory
from tests.public.conftest import assert_error

ORDERS = "/api/orders"


@dataclass
class Catalog:
    store: Store
    products: list[Any]  # ids of active products the store carries
    inactive_product: Any
    elsewhere_product: Any
    inactive_store: Store

    def body(self, **extra: Any) -> dict[str, Any]:
        return order_body(self.store.id, (self.products[0], 2), **extra)


@pytest.fixture
def catalog(store, stocked) -> Catalog:
    inactive_store = StoreFactory.create(is_active=False)
    StockFactory.create(store=inactive_store)
    return Catalog(
        store=store,
        products=[stocked().product_id for _ in range(3)],
        inactive_product=stocked(is_active=False).product_id,
        elsewhere_product=StockFactory.create().product_id,
        inactive_store=inactive_store,
    )


def _set(path: str, value: Any) -> Callable[[dict, Catalog], None]:
    """A mutation setting ``a.b.0.c`` to ``value`` (a callable gets the catalog)."""

    def mutate(body: dict, cat: Catalog) -> None:
        *parents, last = path.split(".")
        node: Any = body
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        resolved = value(cat) if callable(value) else value
        if isinstance(node, list):
            node[int(last)] = resolved
        else:
            node[last] = resolved

    return mutate


def _drop(path: str) -> Callable[[dict, Catalog], None]:
    def mutate(body: dict, cat: Catalog) -> None:
        *parents, last = path.split(".")
        node: Any = body
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        del node[last]

    return mutate


def _items(*entries: Callable[[Catalog], tuple[Any, Any]]) -> Callable[[dict, Catalog], None]:
    def mutate(body: dict, cat: Catalog) -> None:
        body["items"] = [
            {"product_id": str(pid), "quantity": qty} for pid, qty in (e(cat) for e in entries)
        ]

    return mutate


REQUIRED = "This field is required."
NOT_NULL = "This field may not be null."
BLANK = "This field may not be blank."
NOT_SOLD = "This store does not sell this product."
NO_STORE = "No active store has this id."
BAD_UUID = "Must be a valid UUID."
BAD_INT = "A valid integer is required."
BAD_NUMBER = "A valid number is required."
NOT_A_DICT = "Invalid data. Expected a dictionary, but got {}."

INVALID = [
    # items: 1 to 50, each product once
    ("no items", _set("items", []), {"items": ["This list may not be empty."]}),
    ("51 items", _set("items", [{"product_id": str(uuid.uuid4()), "quantity": 1}] * 51),
     {"items": ["Ensure this field has no more than 50 elements."]}),
    ("a product twice", _items(lambda c: (c.products[0], 1), lambda c: (c.products[0], 2)),
     {"items.1.product_id": ["Each product may appear only once."]}),
    ("items missing", _drop("items"), {"items": [REQUIRED]}),
    ("items null", _set("items", None), {"items": [NOT_NULL]}),
    ("items a string", _set("items", "milk"),
     {"items": ['Expected a list of items but got type "str".']}),
    ("items an object", _set("items", {"product_id": "x", "quantity": 1}),
     {"items": ['Expected a list of items but got type "dict".']}),
    ("an item a string", _set("items", ["milk"]), {"items.0": [NOT_A_DICT.format("str")]}),
    # quantity: an integer from 1 to 99
    ("quantity 0", _set("items.0.quantity", 0),
     {"items.0.quantity": ["Ensure this value is greater than or equal to 1."]}),
    ("quantity -1", _set("items.0.quantity", -1),
     {"items.0.quantity": ["Ensure this value is greater than or equal to 1."]}),
    ("quantity 100", _set("items.0.quantity", 100),
     {"items.0.quantity": ["Ensure this value is less than or equal to 99."]}),
    ("quantity 2.5", _set("items.0.quantity", 2.5), {"items.0.quantity": [BAD_INT]}),
    ("quantity a word", _set("items.0.quantity", "two"), {"items.0.quantity": [BAD_INT]}),
    ("quantity a list", _set("items.0.quantity", [2]), {"items.0.quantity": [BAD_INT]}),
    ("quantity null", _set("items.0.quantity", None), {"items.0.quantity": [NOT_NULL]}),
    ("quantity missing", _drop("items.0.quantity"), {"items.0.quantity": [REQUIRED]}),
    ("quantity huge", _set("items.0.quantity", 10**30),
     {"items.0.quantity": ["Ensure this value is less than or equal to 99."]}),
    # products: active and carried by the store
    ("product not a uuid", _set("items.0.product_id", "milk"), {"items.0.product_id": [BAD_UUID]}),
    ("product an object", _set("items.0.product_id", {}), {"items.0.product_id": [BAD_UUID]}),
    ("product missing", _drop("items.0.product_id"), {"items.0.product_id": [REQUIRED]}),
    ("product unknown", _set("items.0.product_id", str(uuid.uuid4())),
     {"items.0.product_id": [NOT_SOLD]}),
    ("product inactive", _set("items.0.product_id", lambda c: str(c.inactive_product)),
     {"items.0.product_id": [NOT_SOLD]}),
    ("product of another store", _set("items.0.product_id", lambda c: str(c.elsewhere_product)),
     {"items.0.product_id": [NOT_SOLD]}),
    ("second product not sold",
     _items(lambda c: (c.products[0], 1), lambda c: (c.elsewhere_product, 1)),
     {"items.1.product_id": [NOT_SOLD]}),
    # store: active
    ("store inactive", _set("store_id", lambda c: str(c.inactive_store.id)),
     {"store_id": [NO_STORE]}),
    ("store unknown", _set("store_id", str(uuid.uuid4())), {"store_id": [NO_STORE]}),
    ("store not a uuid", _set("store_id", "store-1"), {"store_id": [BAD_UUID]}),
    ("store a list", _set("store_id", ["x"]), {"store_id": [BAD_UUID]}),
    ("store null", _set("store_id", None), {"store_id": [NOT_NULL]}),
    ("store missing", _drop("store_id"), {"store_id": [REQUIRED]}),
    # delivery address: lat in [-90, 90], lng in [-180, 180], the rest present
    ("lat above 90", _set("delivery_address.lat", 90.0001),
     {"delivery_address.lat": ["Ensure this value is less than or equal to 90."]}),
    ("lat below -90", _set("delivery_address.lat", -91),
     {"delivery_address.lat": ["Ensure this value is greater than or equal to -90."]}),
    ("lng above 180", _set("delivery_address.lng", 180.5),
     {"delivery_address.lng": ["Ensure this value is less than or equal to 180."]}),
    ("lng below -180", _set("delivery_address.lng", -180.0001),
     {"delivery_address.lng": ["Ensure this value is greater than or equal to -180."]}),
    ("lat a word", _set("delivery_address.lat", "north"), {"delivery_address.lat": [BAD_NUMBER]}),
    ("lat NaN as a string", _set("delivery_address.lat", "NaN"),
     {"delivery_address.lat": ["Latitude must be between -90 and 90."]}),
    ("lng infinite as a string", _set("delivery_address.lng", "-Infinity"),
     {"delivery_address.lng": ["Ensure this value is greater than or equal to -180."]}),
    ("lat null", _set("delivery_address.lat", None), {"delivery_address.lat": [NOT_NULL]}),
    ("lng missing", _drop("delivery_address.lng"), {"delivery_address.lng": [REQUIRED]}),
    ("line1 blank", _set("delivery_address.line1", "   "), {"delivery_address.line1": [BLANK]}),
    ("city missing", _drop("delivery_address.city"), {"delivery_address.city": [REQUIRED]}),
    ("postal code missing", _drop("delivery_address.postal_code"),
     {"delivery_address.postal_code": [REQUIRED]}),
    ("address missing", _drop("delivery_address"), {"delivery_address": [REQUIRED]}),
    ("address a string", _set("delivery_address", "Dam 1"),
     {"delivery_address": [NOT_A_DICT.format("str")]}),
    ("address a list", _set("delivery_address", []),
     {"delivery_address": [NOT_A_DICT.format("list")]}),
    # note: at most 500 characters
    ("note 501 characters", _set("note", "n" * 501),
     {"note": ["Ensure this field has no more than 500 characters."]}),
    ("note a list", _set("note", ["hi"]), {"note": ["Not a valid string."]}),
    ("note null", _set("note", None), {"note": [NOT_NULL]}),
    ("note with a NUL", _set("note", "a\x00b"), {"note": ["Null characters are not allowed."]}),
    # several at once: all of them are reported
    ("store and quantity", lambda b, c: (_set("store_id", "x")(b, c),
                                         _set("items.0.quantity", 0)(b, c)),
     {"store_id": [BAD_UUID],
      "items.0.quantity": ["Ensure this value is greater than or equal to 1."]}),
]


@pytest.mark.parametrize("key", [None, "key-1"], ids=["no key", "with a key"])
@pytest.mark.parametrize(
    ("mutate", "expected"), [case[1:] for case in INVALID], ids=[case[0] for case in INVALID]
)
def test_create_order_refuses_an_invalid_request(customer_client, catalog, mutate, expected, key):
    # given a valid body with one thing wrong
    body = catalog.body()
    mutate(body, catalog)

    # when
    headers = {} if key is None else {"HTTP_IDEMPOTENCY_KEY": key}
    response = customer_client.post(ORDERS, body, **headers)

    # then
    details = assert_error(response, 400, "validation_error")
    assert details == expected
    assert Order.objects.count() == 0
    assert OutboxEvent.objects.count() == 0
    assert IdempotencyKey.objects.count() == 0


@pytest.mark.parametrize("body", [[], ["store_id"], "an order", 42, None, True])
def test_create_order_refuses_a_body_that_is_not_an_object(customer_client, db, body):
    response = customer_client.post(ORDERS, json.dumps(body), content_type="application/json")

    details = assert_error(response, 400, "validation_error")
    assert list(details) == ["non_field_errors"]
    assert Order.objects.count() == 0


def test_create_order_refuses_products_in_different_currencies(customer_client, store, stocked):
    eur, usd = stocked(), stocked(currency="USD")

    response = customer_client.post(
        ORDERS, order_body(store.id, (eur.product_id, 1), (usd.product_id, 1))
    )

    details = assert_error(response, 400, "validation_error")
    assert details == {"items": ["All products of an order share one currency."]}
    assert Order.objects.count() == 0


VALID = [
    ("quantity 1", _set("items.0.quantity", 1)),
    ("quantity 99", _set("items.0.quantity", 99)),
    ("lat 90, lng 180", lambda b, c: b["delivery_address"].update(lat=90, lng=180)),
    ("lat -90, lng -180", lambda b, c: b["delivery_address"].update(lat=-90, lng=-180)),
    ("note 500 characters", _set("note", "n" * 500)),
    ("note empty", _set("note", "")),
    ("note missing", lambda b, c: b.pop("note", None)),
    ("address line2", _set("delivery_address.line2", "3rd floor")),
    ("three products", _items(*[(lambda c, i=i: (c.products[i], i + 1)) for i in range(3)])),
    ("unknown fields ignored", _set("coupon", "FREE")),
]


@pytest.mark.parametrize("mutate", [case[1] for case in VALID], ids=[case[0] for case in VALID])
def test_create_order_accepts_the_edges_of_each_rule(customer_client, catalog, mutate):
    body = catalog.body()
    mutate(body, catalog)

    response = customer_client.post(ORDERS, copy.deepcopy(body))

    assert response.status_code == 201, response.content
    order = response.json()
    assert [(i["product_id"], i["quantity"]) for i in order["items"]] == [
        (i["product_id"], i["quantity"]) for i in body["items"]
    ]
    assert order["note"] == body.get("note", "")
    assert Order.objects.count() == 1


def test_create_order_accepts_50_items(customer_client, store, stocked):
    stocks = [stocked() for _ in range(50)]

    body = order_body(store.id, *[(s.product_id, 1) for s in stocks])

    response = customer_client.post(ORDERS, body)

    assert response.status_code == 201, response.content
    assert len(response.json()["items"]) == 50
