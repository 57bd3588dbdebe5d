"""The Django admin site (/admin/): who may log in, and the orders section."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.messages import get_messages
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from lokaly_core.accounts.models import Role, User
from lokaly_core.inventory.models import Stock
from lokaly_core.orders.models import Order
from lokaly_core.outbox.models import OutboxEvent
from tests.factories import PASSWORD, StockFactory, UserFactory

ORDERS = reverse("admin:core_order_changelist")


def _login(email: str) -> Any:
    return Client().post(
        reverse("admin:login"), {"username": email, "password": PASSWORD, "next": "/admin/"}
    )


@pytest.mark.parametrize("role", [Role.ADMIN, Role.SUPER_ADMIN])
def test_staff_roles_log_into_the_admin_site(db: None, role: Role) -> None:
    user = UserFactory.create(role=role)

    response = _login(user.email)

    assert response.status_code == 302
    assert response["Location"] == "/admin/"


@pytest.mark.parametrize("role", [Role.CUSTOMER, Role.COURIER])
def test_public_roles_cannot_log_into_the_admin_site(db: None, role: Role) -> None:
    user = UserFactory.create(role=role)

    response = _login(user.email)

    assert response.status_code == 200
    assert "for a staff account" in response.content.decode()
    assert "_auth_user_id" not in response.wsgi_request.session


def test_a_customer_session_is_sent_to_the_login_page(db: None) -> None:
    client = Client()
    client.force_login(UserFactory.create(role=Role.CUSTOMER))

    response = client.get(ORDERS)

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_order_list_shows_number_status_store_customer_total_created(
    site_client: Client, make_order: Callable[..., Order]
) -> None:
    stock = StockFactory.create(on_hand=10, product__price_cents=1234)
    order = make_order(stock, quantity=2)

    html = site_client.get(ORDERS).content.decode()

    assert order.number in html
    assert '<td class="field-status">Confirmed</td>' in html
    assert stock.store.name in html
    assert order.customer.email in html
    assert "26.67 EUR" in html  # 2 x 12.34 + 1.99 delivery


def test_order_list_does_a_fixed_number_of_queries(
    site_client: Client, make_order: Callable[..., Order]
) -> None:
    stock = StockFactory.create(on_hand=100)
    make_order(stock)
    with CaptureQueriesContext(connection) as one_order:
        site_client.get(ORDERS)
    for _ in range(5):
        make_order(stock)

    with CaptureQueriesContext(connection) as six_orders:
        response = site_client.get(ORDERS)

    assert response.status_code == 200
    assert len(six_orders) == len(one_order)


def test_order_list_filters_by_status_and_store(
    site_client: Client, make_order: Callable[..., Order]
) -> None:
    stock, other = StockFactory.create(on_hand=10), StockFactory.create(on_hand=10)
    confirmed = make_order(stock)
    pending = make_order(stock, confirm=False)
    elsewhere = make_order(other)

    by_status = site_client.get(ORDERS, {"status__exact": "pending"}).content.decode()
    by_store = site_client.get(ORDERS, {"store__id__exact": str(stock.store_id)}).content.decode()

    assert pending.number in by_status
    assert confirmed.number not in by_status
    assert elsewhere.number not in by_status
    assert {confirmed.number, pending.number} <= _numbers_in(by_store)
    assert elsewhere.number not in by_store


def test_order_list_searches_by_number_and_customer_email(
    site_client: Client, make_order: Callable[..., Order]
) -> None:
    stock = StockFactory.create(on_hand=10)
    alice = UserFactory.create(role=Role.CUSTOMER, email="alice@shop.test")
    hers, other = make_order(stock, customer=alice), make_order(stock)

    by_email = site_client.get(ORDERS, {"q": "alice@shop"}).content.decode()
    by_number = site_client.get(ORDERS, {"q": other.number}).content.decode()

    assert hers.number in by_email
    assert other.number not in by_email
    assert other.number in by_number
    assert hers.number not in by_number


def _numbers_in(html: str) -> set[str]:
    return {n for n in Order.objects.values_list("number", flat=True) if n in html}


def test_order_page_shows_lines_and_history_and_nothing_is_editable(
    site_client: Client, make_order: Callable[..., Order]
) -> None:
    stock = StockFactory.create(on_hand=10, product__name="Oat milk 1 l")
    order = make_order(stock, quantity=3)
    url = reverse("admin:core_order_change", args=[order.pk])

    html = site_client.get(url).content.decode()
    posted = site_client.post(url, {"status": "delivered"})

    assert "Oat milk 1 l" in html
    assert "History" in html
    assert html.count('class="field-status_version"') >= 2  # pending, then confirmed
    assert 'name="status"' not in html
    assert posted.status_code == 403
    order.refresh_from_db()
    assert order.status == "confirmed"


def test_orders_cannot_be_added_or_deleted_on_the_site(site_client: Client, db: None) -> None:
    assert site_client.get(reverse("admin:core_order_add")).status_code == 403
    html = site_client.get(ORDERS).content.decode()
    assert "delete_selected" not in html
    assert "cancel_selected_orders" in html


def _cancel(client: Client, orders: list[Order], **extra: str) -> Any:
    return client.post(
        ORDERS,
        {"action": "cancel_selected_orders", "_selected_action": [str(o.pk) for o in orders]}
        | extra,
    )


def test_cancel_action_asks_for_a_reason_first(
    site_client: Client, make_order: Callable[..., Order]
) -> None:
    order = make_order(StockFactory.create(on_hand=10))

    asked = _cancel(site_client, [order])
    blank = _cancel(site_client, [order], confirm="yes", reason="   ")

    assert asked.status_code == 200
    assert 'name="reason"' in asked.content.decode()
    assert order.number in asked.content.decode()
    assert blank.status_code == 200
    assert "This field is required." in blank.content.decode()
    order.refresh_from_db()
    assert order.status == "confirmed"
    assert not OutboxEvent.objects.filter(type="order.cancelled").exists()


def test_cancel_action_cancels_releases_stock_and_records_the_event(
    site_client: Client, make_order: Callable[..., Order]
) -> None:
    # given a confirmed order holding 2 of 10 units
    stock = StockFactory.create(on_hand=10)
    order = make_order(stock, quantity=2)
    stock.refresh_from_db()
    assert stock.reserved == 2

    # when an admin cancels it from the list
    response = _cancel(site_client, [order], confirm="yes", reason="Store closed early")

    # then it is cancelled through the domain, its stock released and the events recorded
    assert response.status_code == 302
    order.refresh_from_db()
    assert (order.status, order.cancel_reason) == ("cancelled", "Store closed early")
    last = order.history.order_by("-status_version").first()
    assert last is not None
    assert (last.status, last.previous_status, last.reason) == (
        "cancelled",
        "confirmed",
        "Store closed early",
    )
    assert Stock.objects.get(pk=stock.pk).reserved == 0
    cancelled = OutboxEvent.objects.get(type="order.cancelled", aggregate_id=order.id)
    assert cancelled.payload["reason"] == "Store closed early"
    assert OutboxEvent.objects.filter(type="inventory.released", aggregate_id=order.id).count() == 1
    assert [str(m) for m in get_messages(response.wsgi_request)] == [f"{order.number} cancelled."]
    entry = LogEntry.objects.get(object_id=str(order.pk))
    assert entry.get_change_message() == "Cancelled: Store closed early"


def test_cancel_action_reports_each_order_that_cannot_be_cancelled(
    site_client: Client, make_order: Callable[..., Order]
) -> None:
    stock = StockFactory.create(on_hand=10)
    first, second = make_order(stock), make_order(stock)
    _cancel(site_client, [first], confirm="yes", reason="Duplicate")
    events_before = OutboxEvent.objects.count()

    response = _cancel(site_client, [first, second], confirm="yes", reason="Store closed")

    messages = {m.message: m.level_tag for m in get_messages(response.wsgi_request)}
    refused = [text for text, level in messages.items() if level == "error"]
    assert len(refused) == 1
    assert refused[0].startswith(f"{first.number} not cancelled: ")
    assert messages[f"{second.number} cancelled."] == "success"
    first.refresh_from_db()
    assert first.cancel_reason == "Duplicate"
    assert OutboxEvent.objects.count() == events_before + 3  # second: cancelled, released, status


def test_super_admins_get_the_cancel_action_too(db: None) -> None:
    client = Client()
    client.force_login(UserFactory.create(role=Role.SUPER_ADMIN))

    html = client.get(ORDERS).content.decode()

    assert "cancel_selected_orders" in html


def test_a_deactivated_admin_is_sent_to_the_login_page(db: None) -> None:
    user: User = UserFactory.create(role=Role.ADMIN)
    user.is_active = False
    user.save()
    client = Client()
    client.force_login(user)

    response = client.get(ORDERS)

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))
