"""Admin catalog: stores and products (create, list, patch), errors in the contract's shape."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest
from django.db import connection
from rest_framework.test import APIClient

from lokaly_core.accounts.models import Role, User
from lokaly_core.accounts.tokens import ADMIN, issue_pair
from lokaly_core.catalog.models import Product, Store
from tests.factories import ProductFactory, StoreFactory, UserFactory
from tests.public.conftest import assert_error

STORE = {"name": "Lokaly Noord", "address": "Buiksloterweg 5", "lat": 52.38, "lng": 4.9}
PRODUCT = {"sku": "OAT-1L", "name": "Oat milk 1L", "price_cents": 199, "currency": "EUR"}


def staff_client(role: Role = Role.ADMIN) -> APIClient:
    client = APIClient()
    user: User = UserFactory.create(role=role)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_pair(ADMIN, user)['access']}")
    return client


@pytest.fixture
def admin(db: None) -> APIClient:
    return staff_client()


# -- stores -----------------------------------------------------------------------------


def test_create_store_answers_201_with_the_store(admin: APIClient) -> None:
    response = admin.post("/api/admin/stores", STORE, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert {k: body[k] for k in STORE} == STORE
    assert body["is_active"] is True
    store = Store.objects.get(pk=body["id"])
    assert (store.name, store.lat, store.lng) == ("Lokaly Noord", 52.38, 4.9)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("lat", 90.5),
        ("lat", -91),
        ("lng", 180.01),
        ("lng", -200),
        ("lat", "nan"),
        ("lng", "inf"),
        ("lat", "north"),
        ("lat", None),
        ("name", ""),
        ("name", "x" * 201),
        ("address", "a\x00b"),
    ],
)
def test_create_store_rejects_an_invalid_field(admin: APIClient, field: str, value: Any) -> None:
    response = admin.post("/api/admin/stores", {**STORE, field: value}, format="json")

    details = assert_error(response, 400, "validation_error")
    assert field in details
    assert not Store.objects.exists()


def test_store_list_is_paginated_by_name(admin: APIClient) -> None:
    for name in ["C", "A", "B"]:
        StoreFactory.create(name=name, is_active=name != "B")

    first = admin.get("/api/admin/stores?page_size=2").json()
    second = admin.get(first["next"]).json()

    assert [s["name"] for s in first["results"]] == ["A", "B"]
    assert [s["name"] for s in second["results"]] == ["C"]
    assert second["next"] is None
    assert first["results"][1]["is_active"] is False  # inactive stores are listed too


def test_patch_store_changes_only_the_given_fields(admin: APIClient) -> None:
    store = StoreFactory.create(name="Old", lat=10, lng=10)

    response = admin.patch(
        f"/api/admin/stores/{store.id}", {"name": "New", "is_active": False}, format="json"
    )

    assert response.status_code == 200, response.content
    assert response.json()["name"] == "New"
    store.refresh_from_db()
    assert (store.name, store.is_active, store.lat, store.lng) == ("New", False, 10, 10)


def test_patch_store_validates_the_coordinates(admin: APIClient) -> None:
    store = StoreFactory.create(lat=10)

    response = admin.patch(f"/api/admin/stores/{store.id}", {"lat": 91}, format="json")

    assert_error(response, 400, "validation_error")
    store.refresh_from_db()
    assert store.lat == 10


def test_patch_unknown_store_is_404(admin: APIClient) -> None:
    assert_error(
        admin.patch(f"/api/admin/stores/{uuid.uuid4()}", {"name": "x"}, format="json"),
        404,
        "not_found",
    )
    assert_error(admin.patch("/api/admin/stores/not-a-uuid", {}, format="json"), 404, "not_found")


# -- products ---------------------------------------------------------------------------


def test_create_product_answers_201(admin: APIClient) -> None:
    response = admin.post("/api/admin/products", PRODUCT, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert {k: body[k] for k in PRODUCT} == PRODUCT
    assert body["is_active"] is True
    assert Product.objects.get(pk=body["id"]).price_cents == 199


def test_duplicate_sku_is_409_conflict(admin: APIClient) -> None:
    ProductFactory.create(sku="OAT-1L")

    response = admin.post("/api/admin/products", PRODUCT, format="json")

    details = assert_error(response, 409, "conflict")
    assert "sku" in details
    assert Product.objects.filter(sku="OAT-1L").count() == 1


def test_patch_to_a_taken_sku_is_409_and_changes_nothing(admin: APIClient) -> None:
    ProductFactory.create(sku="TAKEN")
    product = ProductFactory.create(sku="MINE", name="Mine")

    response = admin.patch(
        f"/api/admin/products/{product.id}", {"sku": "TAKEN", "name": "Other"}, format="json"
    )

    assert_error(response, 409, "conflict")
    product.refresh_from_db()
    assert (product.sku, product.name) == ("MINE", "Mine")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("price_cents", -1),
        ("price_cents", 1.5),
        ("price_cents", "abc"),
        ("price_cents", 2**31),
        ("currency", "eur"),
        ("currency", "EURO"),
        ("currency", "E1R"),
        ("sku", ""),
        ("sku", "x" * 65),
        ("name", None),
    ],
)
def test_create_product_rejects_an_invalid_field(admin: APIClient, field: str, value: Any) -> None:
    response = admin.post("/api/admin/products", {**PRODUCT, field: value}, format="json")

    details = assert_error(response, 400, "validation_error")
    assert field in details
    assert not Product.objects.exists()


def test_patch_product_price_and_active(admin: APIClient) -> None:
    product = ProductFactory.create(price_cents=100)

    response = admin.patch(
        f"/api/admin/products/{product.id}",
        {"price_cents": 0, "is_active": False},
        format="json",
    )

    assert response.status_code == 200, response.content
    assert response.json()["price_cents"] == 0
    product.refresh_from_db()
    assert (product.price_cents, product.is_active) == (0, False)


def test_patch_unknown_product_is_404(admin: APIClient) -> None:
    response = admin.patch(f"/api/admin/products/{uuid.uuid4()}", {"name": "x"}, format="json")
    assert_error(response, 404, "not_found")


def test_product_list_is_paginated(admin: APIClient) -> None:
    for n in range(5):
        ProductFactory.create(name=f"P{n}")

    first = admin.get("/api/admin/products?page_size=3").json()
    second = admin.get(first["next"]).json()

    assert [p["name"] for p in first["results"] + second["results"]] == [f"P{n}" for n in range(5)]


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("post", "/api/admin/stores"),
        ("post", "/api/admin/products"),
        ("patch", "/api/admin/stores/{store}"),
        ("patch", "/api/admin/products/{product}"),
    ],
)
def test_malformed_bodies_are_400_never_500(admin: APIClient, method: str, url: str) -> None:
    url = url.format(store=StoreFactory.create().id, product=ProductFactory.create().id)
    send = getattr(admin, method)

    assert_error(send(url, "{not json", content_type="application/json"), 400, "malformed_request")
    assert_error(send(url, "[1, 2]", content_type="application/json"), 400, "validation_error")
    assert_error(send(url, "x=1", content_type="text/plain"), 415, "unsupported_media_type")


def test_a_forged_cursor_is_404_not_500(admin: APIClient) -> None:
    assert_error(admin.get("/api/admin/products?cursor=garbage"), 404, "not_found")


def test_catalog_needs_an_admin_token(db: None) -> None:
    assert_error(APIClient().get("/api/admin/products"), 401, "not_authenticated")


# -- a race on one sku ------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_concurrent_creations_of_one_sku_give_one_201_and_the_rest_409() -> None:
    clients = [staff_client() for _ in range(6)]
    barrier = threading.Barrier(len(clients))
    statuses: list[int] = []

    def create(client: APIClient) -> None:
        try:
            barrier.wait()
            statuses.append(client.post("/api/admin/products", PRODUCT, format="json").status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=create, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert sorted(statuses) == [201, 409, 409, 409, 409, 409]
    assert Product.objects.filter(sku=PRODUCT["sku"]).count() == 1
