"""The admin site's stock section: levels read-only, changes through ``stock_adjust``."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from lokaly_core.accounts.models import User
from lokaly_core.inventory.models import Stock, StockAdjustment
from lokaly_core.orders.models import Order
from tests.factories import StockFactory


def _adjust_url(stock: Stock) -> str:
    return reverse("admin:core_stock_adjust", args=[stock.pk])


def test_stock_page_shows_levels_read_only_with_the_ledger_and_an_adjust_button(
    site_client: Client, staff_admin: User
) -> None:
    stock = StockFactory.create(on_hand=7)
    StockAdjustment.objects.create(
        stock=stock, delta=7, reason="Opening count", on_hand_after=7, actor=staff_admin
    )

    html = site_client.get(reverse("admin:core_stock_change", args=[stock.pk])).content.decode()

    assert 'name="on_hand"' not in html
    assert 'name="reserved"' not in html
    assert "Opening count" in html
    assert _adjust_url(stock) in html


def test_adjust_stock_writes_a_ledger_row_as_the_logged_in_user(
    site_client: Client, staff_admin: User
) -> None:
    stock = StockFactory.create(on_hand=10)

    response = site_client.post(_adjust_url(stock), {"delta": "5", "reason": "Delivery"})

    assert response.status_code == 302
    assert response["Location"] == reverse("admin:core_stock_change", args=[stock.pk])
    stock.refresh_from_db()
    assert stock.on_hand == 15
    row = StockAdjustment.objects.get(stock=stock)
    assert (row.delta, row.reason, row.on_hand_after, row.actor_id) == (
        5,
        "Delivery",
        15,
        staff_admin.pk,
    )
    assert [str(m) for m in get_messages(response.wsgi_request)] == [
        "Adjusted by +5: 15 on hand, 15 available."
    ]


def test_adjust_stock_refuses_to_go_below_reserved_and_changes_nothing(
    site_client: Client, make_order: Callable[..., Order]
) -> None:
    # given 5 on hand, 3 of them held by a confirmed order
    stock = StockFactory.create(on_hand=5)
    make_order(stock, quantity=3)

    # when an admin tries to take 4 away
    response = site_client.post(_adjust_url(stock), {"delta": "-4", "reason": "Breakage"})

    # then the page says no, and neither the level nor the ledger moved
    assert response.status_code == 200
    messages = [(m.level_tag, str(m)) for m in get_messages(response.wsgi_request)]
    assert messages == [
        ("error", "Not adjusted: On hand cannot drop below what confirmed orders hold.")
    ]
    stock.refresh_from_db()
    assert (stock.on_hand, stock.reserved) == (5, 3)
    assert not StockAdjustment.objects.filter(stock=stock).exists()


def test_adjust_stock_form_requires_a_non_zero_delta_and_a_reason(site_client: Client) -> None:
    stock = StockFactory.create(on_hand=10)

    response = site_client.post(_adjust_url(stock), {"delta": "0", "reason": ""})

    html = response.content.decode()
    assert response.status_code == 200
    assert "A non-zero whole number of units." in html
    assert "This field is required." in html
    assert not StockAdjustment.objects.exists()


def test_stock_list_and_adjust_page_answer(site_client: Client) -> None:
    stock = StockFactory.create(on_hand=4, product__name="Rye bread")

    listed = site_client.get(reverse("admin:core_stock_changelist")).content.decode()
    asked = site_client.get(_adjust_url(stock))

    assert "Rye bread" in listed
    assert asked.status_code == 200
    assert 'name="delta"' in asked.content.decode()
