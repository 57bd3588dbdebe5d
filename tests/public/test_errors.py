"""One error shape for every error, and no request, however malformed, gets a 500."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lokaly_core.orders.models import Order
from tests.conftest import order_body
from tests.public.conftest import ERROR_CODES, assert_error

ORDERS = "/api/orders"
BODY_ENDPOINTS = [
    "/api/auth/register", "/api/auth/token", "/api/auth/token/refresh", ORDERS,
]


# --- not found, method not allowed ------------------------------------------------------


@pytest.mark.parametrize("path", [
    "/api/nope", "/nope", "/api/orders/", "/api/me/", f"/api/orders/{uuid.uuid4()}/refund",
    "/api/orders/not-a-uuid", "/api/stores/42/products",
])
def test_an_unknown_url_is_not_found(customer_client, path):
    assert_error(customer_client.get(path), 404, "not_found")


@pytest.mark.parametrize(("method", "path"), [
    ("put", ORDERS), ("delete", ORDERS), ("patch", "/api/me"), ("get", "/api/auth/token"),
    ("get", "/api/auth/register"), ("put", "/api/stores"),
])
def test_a_wrong_method_is_method_not_allowed(customer_client, method, path):
    response = getattr(customer_client, method)(path)

    assert_error(response, 405, "method_not_allowed")
    assert response["Allow"]


def test_a_wrong_method_on_one_order_is_method_not_allowed(
    customer_client, customer, place, stocked
):
    order = place(customer, (stocked().product_id, 1))

    response = customer_client.delete(f"{ORDERS}/{order.id}")

    assert_error(response, 405, "method_not_allowed")
    assert Order.objects.filter(pk=order.pk).exists()


# --- bodies the server cannot read ------------------------------------------------------


@pytest.mark.parametrize("path", BODY_ENDPOINTS)
def test_a_form_encoded_body_is_an_unsupported_media_type(customer_client, path):
    response = customer_client.post(
        path, "email=a%40b.test&password=x", content_type="application/x-www-form-urlencoded"
    )

    assert_error(response, 415, "unsupported_media_type")


@pytest.mark.parametrize("content_type", ["text/plain", "multipart/form-data; boundary=x",
                                          "application/xml"])
def test_a_non_json_body_is_an_unsupported_media_type(
    customer_client, store, stocked, content_type
):
    body = json.dumps(order_body(store.id, (stocked().product_id, 1)))

    response = customer_client.post(ORDERS, body, content_type=content_type)

    assert_error(response, 415, "unsupported_media_type")
    assert Order.objects.count() == 0


@pytest.mark.parametrize("path", BODY_ENDPOINTS)
@pytest.mark.parametrize("raw", [
    b"{", b'{"store_id": }', b"{'single': 'quotes'}", b"\xff\xfe\x00", b'{"lat": NaN}',
    b'{"lat": Infinity}', b"[1, 2,]", b"[" * 5000 + b"]" * 5000,
    b'{"a":' * 3000 + b"1" + b"}" * 3000,
], ids=["unclosed", "missing value", "single quotes", "not utf-8", "NaN", "Infinity",
        "trailing comma", "nested 5000 deep", "objects nested 3000 deep"])
def test_a_body_that_is_not_json_is_a_malformed_request(customer_client, path, raw):
    response = customer_client.post(path, raw, content_type="application/json")

    assert_error(response, 400, "malformed_request")


def test_a_body_over_the_upload_limit_is_refused_before_it_is_parsed(
    customer_client, store, stocked
):
    body = order_body(store.id, (stocked().product_id, 1), note="n" * 256 * 1024)

    response = customer_client.post(ORDERS, body)

    assert_error(response, 400, "malformed_request")
    assert Order.objects.count() == 0


def test_a_malformed_body_on_cancel_is_a_malformed_request(
    customer_client, customer, place, stocked
):
    order = place(customer, (stocked().product_id, 1))

    response = customer_client.post(
        f"{ORDERS}/{order.id}/cancel", b"{", content_type="application/json"
    )

    assert_error(response, 400, "malformed_request")
    assert Order.objects.get(pk=order.pk).status == "pending"


def test_a_request_for_another_host_is_refused_in_the_error_shape(customer_client, db):
    response = customer_client.get("/api/me", HTTP_HOST="evil.example")

    assert_error(response, 400, "malformed_request")


# --- no request gets a 500 --------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=20,
)


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=json_values)
def test_random_json_never_makes_an_order_nor_a_500(customer_client, body):
    response = customer_client.post(ORDERS, json.dumps(body), content_type="application/json")

    assert response.status_code in (400, 409), response.content
    code = response.json()["error"]["code"]
    assert code in ERROR_CODES
    assert_error(response, response.status_code, code)
    assert not Order.objects.exists()


PATHS = [
    ("store_id",), ("items",), ("items", 0), ("items", 0, "product_id"), ("items", 0, "quantity"),
    ("delivery_address",), ("delivery_address", "line1"), ("delivery_address", "city"),
    ("delivery_address", "postal_code"), ("delivery_address", "lat"), ("delivery_address", "lng"),
    ("note",),
]


def _replace(body: dict, path: tuple, value: object) -> None:
    """Set ``value`` at ``path``, unless an earlier replacement took the way there away."""
    node: Any = body
    try:
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = value
    except (KeyError, IndexError, TypeError):
        pass


@pytest.fixture
def product_id(stocked) -> str:
    return str(stocked(on_hand=1000).product_id)


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    replacements=st.lists(st.tuples(st.sampled_from(PATHS), json_values), max_size=2),
    key=st.none() | st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1)
    | st.text(max_size=300),
)
def test_a_partly_valid_order_is_placed_or_refused_but_never_a_500(
    customer_client, store, product_id, replacements, key
):
    # given a valid body with up to two values replaced by anything at all
    # (fixtures run once for all examples: the orders placed accumulate, which is harmless)
    body = order_body(store.id, (product_id, 2), note="Ring twice")
    for path, value in replacements:
        _replace(body, path, value)
    headers = {} if key is None else {"HTTP_IDEMPOTENCY_KEY": key}

    # when
    response = customer_client.post(
        ORDERS, json.dumps(body), content_type="application/json", **headers
    )

    # then
    assert response.status_code in (201, 400, 409), response.content
    if response.status_code != 201:
        assert response.json()["error"]["code"] in ERROR_CODES
        assert_error(response, response.status_code, response.json()["error"]["code"])
