"""Admin people: couriers (create, deactivate) and the customer directory."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient, APIRequestFactory
from rest_framework_simplejwt.exceptions import InvalidToken

from lokaly_core.accounts.models import Role, User
from lokaly_core.accounts.tokens import ADMIN, PUBLIC, PublicJWTAuthentication, issue_pair
from lokaly_core.domain.model import orders as o
from lokaly_core.domain.services import ItemRequest, PlaceOrder, place_order
from lokaly_core.orders.uow import DjangoUnitOfWork
from tests.factories import PASSWORD, StockFactory, UserFactory
from tests.public.conftest import assert_error

COURIER = {"email": "Rider@Example.test", "password": "a-long-enough-passphrase", "name": "Rita"}


@pytest.fixture
def admin(db: None) -> APIClient:
    client = APIClient()
    user = UserFactory.create(role=Role.ADMIN)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_pair(ADMIN, user)['access']}")
    return client


# -- couriers ---------------------------------------------------------------------------


def test_create_courier_answers_201_and_the_courier_can_log_in(admin: APIClient) -> None:
    response = admin.post("/api/admin/couriers", COURIER, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == {"id", "email", "name", "is_active", "date_joined"}
    assert (body["email"], body["name"], body["is_active"]) == ("rider@example.test", "Rita", True)
    courier = User.objects.get(pk=body["id"])
    assert courier.role == Role.COURIER
    assert courier.check_password(COURIER["password"])


def test_a_taken_email_in_any_case_is_409_conflict(admin: APIClient) -> None:
    UserFactory.create(email="rider@example.test", role=Role.CUSTOMER)

    response = admin.post("/api/admin/couriers", COURIER, format="json")

    details = assert_error(response, 409, "conflict")
    assert "email" in details
    assert User.objects.filter(email__iexact="rider@example.test").count() == 1


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("password", "short"),
        ("password", "12345678901"),
        ("password", "password123"),
        ("email", "not-an-email"),
        ("email", ""),
        ("name", ""),
        ("name", None),
    ],
)
def test_create_courier_validates(admin: APIClient, field: str, value: Any) -> None:
    response = admin.post("/api/admin/couriers", {**COURIER, field: value}, format="json")

    details = assert_error(response, 400, "validation_error")
    assert field in details
    assert not User.objects.filter(role=Role.COURIER).exists()


def test_courier_list_shows_couriers_only(admin: APIClient) -> None:
    couriers = [UserFactory.create(role=Role.COURIER) for _ in range(3)]
    UserFactory.create(role=Role.CUSTOMER)

    body = admin.get("/api/admin/couriers?page_size=2").json()
    rest = admin.get(body["next"]).json()

    listed = {r["id"] for r in body["results"] + rest["results"]}
    assert listed == {str(c.id) for c in couriers}


def _public_auth(access: str) -> Any:
    request = APIRequestFactory().get("/", HTTP_AUTHORIZATION=f"Bearer {access}")
    return PublicJWTAuthentication().authenticate(request)


def test_deactivating_a_courier_makes_their_tokens_stop_working(admin: APIClient) -> None:
    courier = UserFactory.create(role=Role.COURIER)
    access = issue_pair(PUBLIC, courier)["access"]
    assert _public_auth(access)[0] == courier

    response = admin.patch(f"/api/admin/couriers/{courier.id}", {"is_active": False}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["is_active"] is False
    with pytest.raises(InvalidToken):
        _public_auth(access)

    admin.patch(f"/api/admin/couriers/{courier.id}", {"is_active": True}, format="json")
    assert _public_auth(access)[0] == courier


def test_patch_courier_needs_a_courier(admin: APIClient) -> None:
    customer = UserFactory.create(role=Role.CUSTOMER)
    for target in (customer.id, uuid.uuid4()):
        response = admin.patch(f"/api/admin/couriers/{target}", {"is_active": False}, format="json")
        assert_error(response, 404, "not_found")
    customer.refresh_from_db()
    assert customer.is_active is True


def test_patch_courier_validates_the_body(admin: APIClient) -> None:
    courier = UserFactory.create(role=Role.COURIER)
    url = f"/api/admin/couriers/{courier.id}"
    assert_error(admin.patch(url, {"is_active": "maybe"}, format="json"), 400, "validation_error")
    assert_error(admin.patch(url, "{", content_type="application/json"), 400, "malformed_request")
    assert_error(admin.patch("/api/admin/couriers/42", {}, format="json"), 404, "not_found")


# -- customers --------------------------------------------------------------------------


def _orders(customer: User, stock: Any, count: int) -> None:
    command = PlaceOrder(
        customer_id=customer.id,
        store_id=stock.store_id,
        items=[ItemRequest(stock.product_id, 1)],
        delivery_address=o.Address(
            line1="Damrak 1", city="Amsterdam", postal_code="1012 LG", lat=52.37, lng=4.89
        ),
        note="",
    )
    for _ in range(count):
        place_order(
            uow=DjangoUnitOfWork(), clock=timezone.now, command=command, delivery_fee_cents=0
        )


def test_customer_list_has_order_counts_in_a_fixed_number_of_queries(
    admin: APIClient, django_assert_max_num_queries: Any
) -> None:
    stock = StockFactory.create(on_hand=100)
    customers = [UserFactory.create(role=Role.CUSTOMER) for _ in range(12)]
    for n, customer in enumerate(customers):
        _orders(customer, stock, n % 4)
    UserFactory.create(role=Role.COURIER)

    with django_assert_max_num_queries(3):  # the user of the token, the page (and nothing else)
        response = admin.get("/api/admin/customers?page_size=100")

    assert response.status_code == 200, response.content
    rows = response.json()["results"]
    assert {r["id"]: r["order_count"] for r in rows} == {
        str(c.id): n % 4 for n, c in enumerate(customers)
    }
    assert set(rows[0]) == {"id", "email", "name", "date_joined", "order_count"}


def test_customer_list_query_count_does_not_grow_with_the_page(
    admin: APIClient,
) -> None:
    stock = StockFactory.create(on_hand=100)
    for _ in range(5):
        _orders(UserFactory.create(role=Role.CUSTOMER), stock, 1)

    counts = []
    for size in (1, 5):
        with CaptureQueriesContext(connection) as queries:
            admin.get(f"/api/admin/customers?page_size={size}")
        counts.append(len(queries))

    assert counts[0] == counts[1]


def test_customer_search_matches_email_or_name(admin: APIClient) -> None:
    ada = UserFactory.create(role=Role.CUSTOMER, email="ada@example.test", name="Ada Lovelace")
    UserFactory.create(role=Role.CUSTOMER, email="bob@example.test", name="Bob")
    UserFactory.create(role=Role.COURIER, email="ada.courier@example.test", name="Ada Courier")

    by_email = admin.get("/api/admin/customers?search=ADA@").json()["results"]
    by_name = admin.get("/api/admin/customers?search=lovelace").json()["results"]

    assert [r["id"] for r in by_email] == [str(ada.id)]
    assert [r["id"] for r in by_name] == [str(ada.id)]
    assert by_email[0]["order_count"] == 0


def test_customer_search_with_a_null_character_is_400(admin: APIClient) -> None:
    assert_error(admin.get("/api/admin/customers?search=a%00b"), 400, "validation_error")


def test_people_endpoints_refuse_a_public_token(db: None) -> None:
    client = APIClient()
    customer = UserFactory.create(role=Role.CUSTOMER, password=PASSWORD)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_pair(PUBLIC, customer)['access']}")
    assert_error(client.get("/api/admin/customers"), 401, "token_invalid")
