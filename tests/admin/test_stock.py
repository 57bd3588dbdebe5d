"""Admin stock: the list per store, adjustments with a ledger, and exact figures under races."""

from __future__ import annotations

import random
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from lokaly_core.accounts.models import Role, User
from lokaly_core.accounts.tokens import ADMIN, issue_pair
from lokaly_core.domain.errors import InsufficientStock
from lokaly_core.domain.inventory import stock_adjust
from lokaly_core.domain.model import orders as o
from lokaly_core.domain.services import ItemRequest, PlaceOrder, order_reserve_stock, place_order
from lokaly_core.inventory.models import Stock, StockAdjustment
from lokaly_core.orders.models import Order
from lokaly_core.orders.uow import DjangoUnitOfWork
from tests.factories import ProductFactory, StockFactory, StoreFactory, UserFactory
from tests.public.conftest import assert_error


@pytest.fixture
def staff(db: None) -> User:
    return UserFactory.create(role=Role.ADMIN)


@pytest.fixture
def admin(staff: User) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_pair(ADMIN, staff)['access']}")
    return client


def _adjust(client: APIClient, store_id: Any, body: dict[str, Any]) -> Any:
    return client.post(f"/api/admin/stores/{store_id}/stock/adjustments", body, format="json")


# -- the list ---------------------------------------------------------------------------


def test_stock_list_shows_on_hand_reserved_and_available(admin: APIClient) -> None:
    store = StoreFactory.create()
    bread = ProductFactory.create(sku="B", name="Bread")
    apples = ProductFactory.create(sku="A", name="Apples")
    StockFactory.create(store=store, product=bread, on_hand=5, reserved=2)
    StockFactory.create(store=store, product=apples, on_hand=7)
    StockFactory.create(product=ProductFactory.create(sku="C"))  # another store's

    response = admin.get(f"/api/admin/stores/{store.id}/stock")

    assert response.status_code == 200, response.content
    rows = response.json()["results"]
    assert [(r["sku"], r["name"], r["on_hand"], r["reserved"], r["available"]) for r in rows] == [
        ("A", "Apples", 7, 0, 7),
        ("B", "Bread", 5, 2, 3),
    ]
    assert set(rows[0]) == {"product_id", "sku", "name", "on_hand", "reserved", "available"}


def test_stock_list_is_paginated(admin: APIClient) -> None:
    store = StoreFactory.create()
    for n in range(3):
        StockFactory.create(store=store, product=ProductFactory.create(sku=f"S{n}"))

    first = admin.get(f"/api/admin/stores/{store.id}/stock?page_size=2").json()
    second = admin.get(first["next"]).json()

    assert [r["sku"] for r in first["results"] + second["results"]] == ["S0", "S1", "S2"]


def test_stock_of_an_unknown_store_is_404(admin: APIClient) -> None:
    assert_error(admin.get(f"/api/admin/stores/{uuid.uuid4()}/stock"), 404, "not_found")
    assert_error(admin.get("/api/admin/stores/123/stock"), 404, "not_found")


# -- adjustments ------------------------------------------------------------------------


def test_adjustment_answers_201_with_the_row_and_writes_the_ledger(
    admin: APIClient, staff: User
) -> None:
    stock = StockFactory.create(on_hand=10, reserved=4)

    response = _adjust(
        admin,
        stock.store_id,
        {"product_id": str(stock.product_id), "delta": -6, "reason": "broken"},
    )

    assert response.status_code == 201, response.content
    assert response.json() == {
        "product_id": str(stock.product_id),
        "sku": stock.product.sku,
        "name": stock.product.name,
        "on_hand": 4,
        "reserved": 4,
        "available": 0,
    }
    [entry] = StockAdjustment.objects.filter(stock=stock)
    assert (entry.delta, entry.reason, entry.on_hand_after, entry.actor_id) == (
        -6,
        "broken",
        4,
        staff.id,
    )
    assert entry.created_at is not None


def test_adjustment_below_reserved_is_409_with_details_and_changes_nothing(
    admin: APIClient,
) -> None:
    stock = StockFactory.create(on_hand=10, reserved=4)

    response = _adjust(
        admin, stock.store_id, {"product_id": str(stock.product_id), "delta": -7, "reason": "count"}
    )

    details = assert_error(response, 409, "insufficient_stock")
    assert details == {"on_hand": 10, "reserved": 4, "available": 6, "delta": -7}
    stock.refresh_from_db()
    assert stock.on_hand == 10
    assert not StockAdjustment.objects.exists()


def test_positive_adjustment_starts_carrying_a_product(admin: APIClient) -> None:
    store, product = StoreFactory.create(), ProductFactory.create()

    response = _adjust(
        admin, store.id, {"product_id": str(product.id), "delta": 12, "reason": "delivery"}
    )

    assert response.status_code == 201, response.content
    assert Stock.objects.get(store=store, product=product).on_hand == 12


def test_adjusting_an_unknown_product_is_404(admin: APIClient) -> None:
    response = _adjust(
        admin,
        StoreFactory.create().id,
        {"product_id": str(uuid.uuid4()), "delta": 1, "reason": "x"},
    )
    assert_error(response, 404, "not_found")


def test_adjusting_in_an_unknown_store_is_404(admin: APIClient) -> None:
    response = _adjust(
        admin,
        uuid.uuid4(),
        {"product_id": str(ProductFactory.create().id), "delta": 1, "reason": "x"},
    )
    assert_error(response, 404, "not_found")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("delta", 0),
        ("delta", True),
        ("delta", "3"),
        ("delta", 1.5),
        ("delta", None),
        ("delta", 10**9),
        ("reason", ""),
        ("reason", "   "),
        ("reason", "x" * 301),
        ("product_id", "nope"),
        ("product_id", None),
    ],
)
def test_invalid_adjustments_are_400(admin: APIClient, field: str, value: Any) -> None:
    stock = StockFactory.create(on_hand=10)
    body = {"product_id": str(stock.product_id), "delta": 1, "reason": "x", field: value}

    details = assert_error(_adjust(admin, stock.store_id, body), 400, "validation_error")

    assert field in details
    assert not StockAdjustment.objects.exists()


def test_malformed_adjustment_body_is_400(admin: APIClient) -> None:
    store = StoreFactory.create()
    response = admin.post(
        f"/api/admin/stores/{store.id}/stock/adjustments", "{", content_type="application/json"
    )
    assert_error(response, 400, "malformed_request")


# -- races ------------------------------------------------------------------------------

INITIAL = 30
DELTAS = [+5, -10, +8, -25, +3, -4, +12, -60, +2, -7, +6, -15, +1, -60, +9, -3, +4, -20, +7, -60]


def _place_pending(store: Any, product: Any, customer: User, count: int) -> list[uuid.UUID]:
    command = PlaceOrder(
        customer_id=customer.id,
        store_id=store.id,
        items=[ItemRequest(product.id, 1)],
        delivery_address=o.Address(
            line1="Keizersgracht 1", city="Amsterdam", postal_code="1015 CJ", lat=52.37, lng=4.89
        ),
        note="",
    )
    return [
        place_order(
            uow=DjangoUnitOfWork(), clock=timezone.now, command=command, delivery_fee_cents=0
        ).id
        for _ in range(count)
    ]


@pytest.mark.django_db(transaction=True)
def test_stock_stays_exact_when_adjustments_and_reservations_race() -> None:
    # given one product with 30 on hand and 50 pending orders of one unit each
    assert len(DELTAS) == 20
    store, product = StoreFactory.create(), ProductFactory.create()
    StockFactory.create(store=store, product=product, on_hand=INITIAL)
    staff = UserFactory.create(role=Role.ADMIN)
    order_ids = _place_pending(store, product, UserFactory.create(role=Role.CUSTOMER), 50)
    succeeded: list[int] = []
    refused: list[int] = []
    lock = threading.Lock()

    def reserve(order_id: uuid.UUID) -> None:
        order_reserve_stock(uow=DjangoUnitOfWork(), clock=timezone.now, order_id=order_id)

    def adjust(delta: int) -> None:
        try:
            stock_adjust(
                uow=DjangoUnitOfWork(),
                store_id=store.id,
                product_id=product.id,
                delta=delta,
                reason="race",
                actor_id=staff.id,
            )
        except InsufficientStock:
            with lock:
                refused.append(delta)
            return
        with lock:
            succeeded.append(delta)

    tasks = [(reserve, oid) for oid in order_ids] + [(adjust, d) for d in DELTAS]
    random.Random(7).shuffle(tasks)

    def run(task: tuple[Any, Any]) -> None:
        try:
            task[0](task[1])
        finally:
            connection.close()  # each pool thread has its own connection

    # when they all run at once on 12 threads
    with ThreadPoolExecutor(max_workers=12) as pool:
        list(pool.map(run, tasks))

    # then the figures add up exactly
    stock = Stock.objects.get(store=store, product=product)
    confirmed = Order.objects.filter(pk__in=order_ids, status="confirmed").count()
    assert Order.objects.filter(pk__in=order_ids, stock_state="reserved").count() == confirmed
    assert len(succeeded) + len(refused) == 20
    assert {-60} <= set(refused)  # these can never pass: at most 30 + 57 on hand
    assert stock.on_hand == INITIAL + sum(succeeded)
    assert stock.reserved == confirmed
    assert 0 <= stock.reserved <= stock.on_hand
    ledger = list(StockAdjustment.objects.filter(stock=stock).values_list("delta", flat=True))
    assert sorted(ledger) == sorted(succeeded)
    assert Order.objects.filter(pk__in=order_ids, status="pending").count() == 0


def test_an_adjustment_past_the_largest_quantity_is_409_not_500(admin: APIClient) -> None:
    stock = StockFactory.create(on_hand=2**31 - 10)

    response = _adjust(
        admin, stock.store_id, {"product_id": str(stock.product_id), "delta": 20, "reason": "x"}
    )

    assert_error(response, 409, "conflict")
    stock.refresh_from_db()
    assert stock.on_hand == 2**31 - 10
    assert not StockAdjustment.objects.exists()
