"""Admin orders: list (filters, search, ordering, pagination, query count), detail, cancel."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from lokaly_core.accounts.models import Role, User
from lokaly_core.accounts.tokens import ADMIN, issue_pair
from lokaly_core.inventory.models import Stock
from lokaly_core.orders.models import Order
from lokaly_core.outbox.models import OutboxEvent
from tests.factories import StockFactory, UserFactory
from tests.public.conftest import ISO_UTC, assert_error

MISSING = "00000000-0000-4000-8000-000000000000"


def staff_client(user: User) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_pair(ADMIN, user)['access']}")
    return client


@pytest.fixture
def admin(staff_admin: User) -> APIClient:
    return staff_client(staff_admin)


@pytest.fixture
def stock(db: None) -> Stock:
    return StockFactory.create(on_hand=100)


def _at(order: Order, when: datetime) -> Order:
    Order.objects.filter(pk=order.pk).update(created_at=when)
    order.created_at = when
    return order


def _ids(response: Any) -> list[str]:
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


# -- list ------------------------------------------------------------------------------------


def test_list_rows_are_orders_with_their_customer(
    admin: APIClient, make_order: Callable[..., Order], stock: Stock
) -> None:
    customer = UserFactory.create(name="Ada Lovelace")
    order = make_order(stock, quantity=3, customer=customer)

    response = admin.get("/api/admin/orders")

    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"results", "next", "previous"}
    [row] = body["results"]
    assert row["id"] == str(order.id)
    assert row["customer"] == {
        "id": str(customer.id),
        "email": customer.email,
        "name": "Ada Lovelace",
    }
    assert (row["status"], row["status_version"], row["number"]) == ("confirmed", 2, order.number)
    assert row["items"] == [
        {
            "product_id": str(stock.product_id),
            "name": stock.product.name,
            "quantity": 3,
            "unit_price_cents": 129,
            "line_total_cents": 387,
        }
    ]
    assert (row["subtotal_cents"], row["delivery_fee_cents"], row["total_cents"]) == (387, 199, 586)
    assert ISO_UTC.match(row["created_at"]) and ISO_UTC.match(row["updated_at"])


def test_list_is_newest_first_by_default_and_oldest_first_on_request(
    admin: APIClient, make_order: Callable[..., Order], stock: Stock
) -> None:
    now = timezone.now()
    orders = [_at(make_order(stock, confirm=False), now - timedelta(minutes=m)) for m in (3, 1, 2)]
    newest_first = [str(o.id) for o in sorted(orders, key=lambda o: o.created_at, reverse=True)]

    assert _ids(admin.get("/api/admin/orders")) == newest_first
    assert _ids(admin.get("/api/admin/orders?ordering=-created_at")) == newest_first
    assert _ids(admin.get("/api/admin/orders?ordering=created_at")) == newest_first[::-1]


@pytest.mark.parametrize("ordering", ["-created_at", "created_at"])
def test_cursor_pagination_walks_every_order_once(
    admin: APIClient, make_order: Callable[..., Order], stock: Stock, ordering: str
) -> None:
    created = {str(make_order(stock, confirm=False).id) for _ in range(5)}

    seen: list[str] = []
    url: str | None = f"/api/admin/orders?page_size=2&ordering={ordering}"
    while url:
        response = admin.get(url)
        seen += _ids(response)
        url = response.json()["next"]

    assert len(seen) == 5
    assert set(seen) == created


def test_list_filters_by_status_store_and_customer(
    admin: APIClient, make_order: Callable[..., Order]
) -> None:
    stock_a, stock_b = StockFactory.create(on_hand=50), StockFactory.create(on_hand=50)
    alice = UserFactory.create()
    confirmed_a = make_order(stock_a, customer=alice)
    pending_a = make_order(stock_a, confirm=False)
    confirmed_b = make_order(stock_b, customer=alice)

    assert set(_ids(admin.get("/api/admin/orders?status=confirmed"))) == {
        str(confirmed_a.id),
        str(confirmed_b.id),
    }
    assert set(_ids(admin.get(f"/api/admin/orders?store_id={stock_a.store_id}"))) == {
        str(confirmed_a.id),
        str(pending_a.id),
    }
    assert _ids(admin.get(f"/api/admin/orders?status=confirmed&store_id={stock_a.store_id}")) == [
        str(confirmed_a.id)
    ]
    assert set(_ids(admin.get(f"/api/admin/orders?customer_id={alice.id}"))) == {
        str(confirmed_a.id),
        str(confirmed_b.id),
    }
    assert _ids(admin.get("/api/admin/orders?status=delivered")) == []


def test_list_filters_by_creation_time_after_inclusive_before_exclusive(
    admin: APIClient, make_order: Callable[..., Order], stock: Stock
) -> None:
    base = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    early, middle, late = (
        _at(make_order(stock, confirm=False), base + timedelta(hours=h)) for h in (0, 1, 2)
    )

    after = admin.get("/api/admin/orders", {"created_after": "2026-11-01T13:00:00Z"})
    before = admin.get("/api/admin/orders", {"created_before": "2026-11-01T13:00:00Z"})
    both = admin.get(
        "/api/admin/orders",
        {"created_after": "2026-11-01T12:30:00+00:00", "created_before": "2026-11-01T13:30:00Z"},
    )

    assert _ids(after) == [str(late.id), str(middle.id)]
    assert _ids(before) == [str(early.id)]
    assert _ids(both) == [str(middle.id)]


def test_search_matches_order_number_exact_or_prefix_any_case(
    admin: APIClient, make_order: Callable[..., Order], stock: Stock
) -> None:
    orders = [make_order(stock, confirm=False) for _ in range(3)]
    Order.objects.filter(pk=orders[0].pk).update(number="LK-900001")
    Order.objects.filter(pk=orders[1].pk).update(number="LK-900002")
    Order.objects.filter(pk=orders[2].pk).update(number="LK-800001")

    assert _ids(admin.get("/api/admin/orders?search=LK-900001")) == [str(orders[0].id)]
    assert set(_ids(admin.get("/api/admin/orders?search=lk-9000"))) == {
        str(orders[0].id),
        str(orders[1].id),
    }
    assert _ids(admin.get("/api/admin/orders?search=LK-7")) == []
    # LIKE wildcards in the term are literal characters
    assert _ids(admin.get("/api/admin/orders?search=LK-%25")) == []
    assert _ids(admin.get("/api/admin/orders?search=LK-_00001")) == []


def test_search_matches_customer_email_case_insensitively(
    admin: APIClient, make_order: Callable[..., Order], stock: Stock
) -> None:
    alice, bob = UserFactory.create(email="alice@example.test"), UserFactory.create()
    mine = make_order(stock, customer=alice, confirm=False)
    make_order(stock, customer=bob, confirm=False)

    assert _ids(admin.get("/api/admin/orders?search=Alice@Example.TEST")) == [str(mine.id)]
    assert _ids(admin.get("/api/admin/orders", {"search": "  alice@example.test "})) == [
        str(mine.id)
    ]
    assert _ids(admin.get("/api/admin/orders?search=nobody@example.test")) == []


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("status=shipped", "status"),
        ("store_id=not-a-uuid", "store_id"),
        ("customer_id=42", "customer_id"),
        ("created_after=yesterday", "created_after"),
        ("created_before=2026-13-45T00:00:00Z", "created_before"),
        ("ordering=total_cents", "ordering"),
        ("ordering=-created_at,id", "ordering"),
        ("search=%00", "search"),
        ("search=" + "x" * 300, "search"),
        (
            "created_after=2026-11-02T00:00:00Z&created_before=2026-11-01T00:00:00Z",
            "created_before",
        ),
    ],
)
def test_invalid_filters_are_400_validation_error(admin: APIClient, query: str, field: str) -> None:
    details = assert_error(admin.get(f"/api/admin/orders?{query}"), 400, "validation_error")

    assert list(details) == [field]


@pytest.mark.parametrize("cursor", ["garbage", "cD0yMDI2LTEx%00", "cD14eXo="])
def test_forged_cursor_is_404_not_500(admin: APIClient, db: None, cursor: str) -> None:
    assert_error(admin.get(f"/api/admin/orders?cursor={cursor}"), 404, "not_found")


def test_list_makes_the_same_number_of_queries_whatever_the_page_size(
    admin: APIClient,
    make_order: Callable[..., Order],
    stock: Stock,
    django_assert_max_num_queries: Any,
) -> None:
    for _ in range(30):
        make_order(stock, confirm=False)

    # the user behind the token, the page of orders with customers, their lines, their
    # current deliveries
    for size in (1, 10, 30):
        with django_assert_max_num_queries(4):
            response = admin.get(f"/api/admin/orders?page_size={size}")
        assert len(response.json()["results"]) == size
    query: dict[str, str | int] = {"page_size": 30, "search": "LK-", "status": "pending"}
    query["store_id"] = str(stock.store_id)
    with django_assert_max_num_queries(4):
        response = admin.get("/api/admin/orders", query)
    assert len(response.json()["results"]) == 30


# -- detail ----------------------------------------------------------------------------------


def test_detail_has_customer_history_picking_and_events_oldest_first(
    admin: APIClient, make_order: Callable[..., Order], stock: Stock
) -> None:
    order = make_order(stock, quantity=2)
    assert admin.post(f"/api/admin/orders/{order.id}/picking/start").status_code == 200

    response = admin.get(f"/api/admin/orders/{order.id}")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["id"] == str(order.id)
    assert body["customer"]["id"] == str(order.customer_id)
    assert [(h["status"], h["status_version"]) for h in body["history"]] == [
        ("pending", 1),
        ("confirmed", 2),
    ]
    assert body["picking"]["status"] == "started"
    assert ISO_UTC.match(body["picking"]["started_at"])
    assert body["picking"]["completed_at"] is None
    types = [e["type"] for e in body["events"]]
    # the reservation's two events share one timestamp: their relative order is open
    assert (types[0], sorted(types[1:3]), types[3]) == (
        "order.created",
        ["inventory.reserved", "order.status_changed"],
        "picking.started",
    )
    assert len(types) == 4
    stored = set(
        OutboxEvent.objects.filter(aggregate_id=order.id).values_list("event_id", flat=True)
    )
    assert {uuid.UUID(e["event_id"]) for e in body["events"]} == stored
    assert set(body["events"][0]) == {"event_id", "type", "occurred_at", "published_at"}


def test_events_of_one_change_follow_their_publication_order(
    admin: APIClient, make_order: Callable[..., Order], stock: Stock
) -> None:
    order = make_order(stock)
    rows = OutboxEvent.objects.filter(aggregate_id=order.id)
    reserved = rows.get(type="inventory.reserved")
    changed = rows.get(type="order.status_changed")
    # stream ids compare as numbers: as text, "...-10" would sort before "...-9"
    rows.filter(pk=changed.pk).update(stream_id="1700000000009-10", published_at=timezone.now())
    rows.filter(pk=reserved.pk).update(stream_id="1700000000009-9", published_at=timezone.now())

    body = admin.get(f"/api/admin/orders/{order.id}").json()

    assert [e["type"] for e in body["events"]] == [
        "order.created",
        "inventory.reserved",
        "order.status_changed",
    ]
    assert ISO_UTC.match(body["events"][1]["published_at"])
    assert body["events"][0]["published_at"] is None


def test_detail_of_an_order_without_picking_has_picking_null(
    admin: APIClient, make_order: Callable[..., Order], stock: Stock
) -> None:
    order = make_order(stock, confirm=False)

    body = admin.get(f"/api/admin/orders/{order.id}").json()

    assert body["picking"] is None
    assert [h["status"] for h in body["history"]] == ["pending"]


def test_detail_makes_a_fixed_number_of_queries(
    admin: APIClient,
    make_order: Callable[..., Order],
    stock: Stock,
    django_assert_max_num_queries: Any,
) -> None:
    order = make_order(stock)

    # user, order with customer and picking, lines, current delivery, history, events
    with django_assert_max_num_queries(6):
        assert admin.get(f"/api/admin/orders/{order.id}").status_code == 200


def test_unknown_order_is_404(admin: APIClient) -> None:
    assert_error(admin.get(f"/api/admin/orders/{MISSING}"), 404, "not_found")
    assert_error(admin.get("/api/admin/orders/not-a-uuid"), 404, "not_found")


# -- cancel ----------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["pending", "confirmed", "picking", "ready"])
def test_admin_cancels_from_every_open_status_and_releases_stock(
    admin: APIClient, make_order: Callable[..., Order], stock: Stock, status: str
) -> None:
    order = make_order(stock, quantity=4, confirm=status != "pending")
    if status in {"picking", "ready"}:
        Order.objects.filter(pk=order.pk).update(status=status)

    response = admin.post(
        f"/api/admin/orders/{order.id}/cancel", {"reason": "customer phoned"}, format="json"
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["status"], body["cancel_reason"]) == ("cancelled", "customer phoned")
    assert body["customer"]["id"] == str(order.customer_id)
    stock.refresh_from_db()
    assert (stock.on_hand, stock.reserved) == (100, 0)
    events = list(
        OutboxEvent.objects.filter(aggregate_id=order.id).values_list("type", "occurred_at")
    )
    types = [t for t, _ in events]
    # The cancel's events may share one timestamp: order by it, ties allowed.
    last_change = max(at for t, at in events if t == "order.status_changed")
    cancelled = [at for t, at in events if t == "order.cancelled"]
    assert len(cancelled) == 1
    assert cancelled[0] >= last_change
    assert ("inventory.released" in types) == (status != "pending")


@pytest.mark.parametrize("status", ["delivered", "cancelled"])
def test_cancel_of_a_finished_order_is_409_and_changes_nothing(
    admin: APIClient, make_order: Callable[..., Order], stock: Stock, status: str
) -> None:
    order = make_order(stock)
    Order.objects.filter(pk=order.pk).update(status=status)
    events_before = OutboxEvent.objects.count()

    response = admin.post(f"/api/admin/orders/{order.id}/cancel", {"reason": "x"}, format="json")

    assert_error(response, 409, "invalid_transition")
    order.refresh_from_db()
    assert (order.status, order.cancel_reason) == (status, None)
    assert OutboxEvent.objects.count() == events_before
    stock.refresh_from_db()
    assert stock.reserved == 2


@pytest.mark.parametrize("body", [{}, {"reason": ""}, {"reason": "   "}, {"reason": None}])
def test_cancel_needs_a_reason(
    admin: APIClient, make_order: Callable[..., Order], stock: Stock, body: dict[str, Any]
) -> None:
    order = make_order(stock)

    details = assert_error(
        admin.post(f"/api/admin/orders/{order.id}/cancel", body, format="json"),
        400,
        "validation_error",
    )

    assert list(details) == ["reason"]
    order.refresh_from_db()
    assert order.status == "confirmed"


def test_cancel_rejects_bad_json_and_unknown_orders(admin: APIClient, db: None) -> None:
    assert_error(
        admin.post(f"/api/admin/orders/{MISSING}/cancel", {"reason": "x"}, format="json"),
        404,
        "not_found",
    )
    assert_error(
        admin.post(
            f"/api/admin/orders/{MISSING}/cancel", "{not json", content_type="application/json"
        ),
        400,
        "malformed_request",
    )
    assert_error(
        admin.post(f"/api/admin/orders/{MISSING}/cancel", "reason=x", content_type="text/plain"),
        415,
        "unsupported_media_type",
    )


def test_the_schema_lists_the_admin_order_endpoints(api_client: APIClient, db: None) -> None:
    response = api_client.get("/api/schema/", HTTP_ACCEPT="application/json")

    assert response.status_code == 200
    paths = response.json()["paths"]
    for path in (
        "/api/admin/auth/token",
        "/api/admin/auth/token/refresh",
        "/api/admin/orders",
        "/api/admin/orders/{order_id}",
        "/api/admin/orders/{order_id}/cancel",
        "/api/admin/orders/{order_id}/picking/start",
        "/api/admin/orders/{order_id}/picking/complete",
    ):
        assert path in paths, path
    params = {p["name"] for p in paths["/api/admin/orders"]["get"]["parameters"]}
    assert {"status", "store_id", "customer_id", "created_after", "created_before"} <= params
    assert {"search", "ordering", "cursor", "page_size"} <= params


def test_the_admin_schema_validates_without_warnings_and_documents_the_delivery(
    api_client: APIClient, db: None, tmp_path: Any
) -> None:
    # --validate: against the OpenAPI 3 JSON schema; a warning (a clashing operationId, two
    # choice sets under one enum name) fails the run
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "s.yaml"))
    schemas = api_client.get("/api/schema/", HTTP_ACCEPT="application/json").json()["components"][
        "schemas"
    ]
    assert set(schemas["AdminOrderDelivery"]["properties"]) == {
        "id", "status", "courier", "assigned_at", "picked_up_at", "delivered_at",
    }


def test_super_admin_reads_orders_too(make_order: Callable[..., Order], stock: Stock) -> None:
    order = make_order(stock)
    client = staff_client(UserFactory.create(role=Role.SUPER_ADMIN))

    assert _ids(client.get("/api/admin/orders")) == [str(order.id)]
