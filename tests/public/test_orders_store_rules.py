"""v1.1 order rules of a store (docs/api.md, "Stores: opening hours and delivery area"):
closed or paused (409 store_closed), outside the delivery area (400 on delivery_address),
the customer's open orders at the limit (409 too_many_open_orders); and the public store."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest
from django.utils import timezone

from lokaly_core.catalog.models import Store
from lokaly_core.domain.geo import distance_m
from lokaly_core.domain.hours import WEEKDAYS
from lokaly_core.orders.models import IdempotencyKey, Order
from lokaly_core.outbox.models import OutboxEvent
from tests.conftest import client_for, order_body
from tests.public.conftest import assert_error

ORDERS = "/api/orders"
ALL_DAY = {day: [["00:00", "12:00"], ["12:00", "00:00"]] for day in WEEKDAYS}


def _only_in_two_days() -> tuple[dict, datetime]:
    """Hours open only 10:00-11:00 UTC the day after tomorrow, and that opening."""
    day = (timezone.now() + timedelta(days=2)).date()
    return {WEEKDAYS[day.weekday()]: [["10:00", "11:00"]]}, datetime.combine(
        day, time(10, 0), tzinfo=UTC
    )


def _nothing_written() -> None:
    assert (Order.objects.count(), OutboxEvent.objects.count()) == (0, 0)


def test_a_paused_store_refuses_orders_with_no_next_opening(customer_client, store, stocked):
    stock = stocked()
    Store.objects.filter(pk=store.pk).update(accepting_orders=False)

    response = customer_client.post(
        ORDERS, order_body(store.id, (stock.product_id, 1)), format="json"
    )

    assert assert_error(response, 409, "store_closed") == {"next_opening_at": None}
    _nothing_written()


def test_a_store_outside_its_hours_refuses_orders_until_its_next_opening(
    customer_client, store, stocked
):
    stock = stocked()
    hours, opening = _only_in_two_days()
    Store.objects.filter(pk=store.pk).update(opening_hours=hours)

    response = customer_client.post(
        ORDERS, order_body(store.id, (stock.product_id, 1)), format="json"
    )

    details = assert_error(response, 409, "store_closed")
    assert details == {"next_opening_at": opening.strftime("%Y-%m-%dT%H:%M:%SZ")}
    _nothing_written()


def test_a_store_inside_its_hours_in_its_time_zone_takes_orders(customer_client, store, stocked):
    stock = stocked()
    Store.objects.filter(pk=store.pk).update(opening_hours=ALL_DAY, timezone="Pacific/Auckland")

    response = customer_client.post(
        ORDERS, order_body(store.id, (stock.product_id, 1)), format="json"
    )

    assert response.status_code == 201, response.content


def test_the_public_store_shows_is_open_and_its_options(customer_client, store):
    hours, _ = _only_in_two_days()
    Store.objects.filter(pk=store.pk).update(
        opening_hours=hours, timezone="Europe/Amsterdam", delivery_radius_m=2_500
    )
    paused = Store.objects.create(
        name="Zz paused", address="Dam 2", lat=52.37, lng=4.89, accepting_orders=False
    )

    rows = customer_client.get("/api/stores").json()["results"]

    by_id = {row["id"]: row for row in rows}
    mine = by_id[str(store.id)]
    assert mine["is_open"] is False
    assert mine["timezone"] == "Europe/Amsterdam"
    assert mine["delivery_radius_m"] == 2_500
    day = next(iter(hours))
    assert mine["opening_hours"] == {d: (hours[d] if d == day else []) for d in WEEKDAYS}
    assert by_id[str(paused.id)]["is_open"] is False
    assert by_id[str(paused.id)]["opening_hours"] is None


def test_an_address_outside_the_delivery_radius_is_400_with_the_distance(
    customer_client, store, stocked
):
    stock = stocked()
    Store.objects.filter(pk=store.pk).update(delivery_radius_m=1_000)
    body = order_body(store.id, (stock.product_id, 1))
    body["delivery_address"].update(lat=52.40, lng=4.89)  # about 3.3 km north

    response = customer_client.post(ORDERS, body, format="json")

    details = assert_error(response, 400, "validation_error")
    distance = round(distance_m(store.lat, store.lng, 52.40, 4.89))
    assert 3_300 <= distance <= 3_400
    assert details == {
        "delivery_address": [
            f"The address is {distance} m from the store, which delivers within 1000 m."
        ],
        "distance_m": distance,
        "delivery_radius_m": 1_000,
    }
    _nothing_written()


def test_an_address_inside_the_delivery_radius_is_taken(customer_client, store, stocked):
    stock = stocked()
    Store.objects.filter(pk=store.pk).update(delivery_radius_m=5_000)
    body = order_body(store.id, (stock.product_id, 1))
    body["delivery_address"].update(lat=52.40, lng=4.89)

    assert customer_client.post(ORDERS, body, format="json").status_code == 201


def test_the_open_orders_limit_refuses_one_more_until_one_is_done(
    customer_client, other_customer, store, stocked, settings
):
    # given a limit of 3, and 3 open orders of the customer
    settings.MAX_OPEN_ORDERS_PER_CUSTOMER = 3
    stock = stocked(on_hand=100)
    body = order_body(store.id, (stock.product_id, 1))
    placed = [customer_client.post(ORDERS, body, format="json").json()["id"] for _ in range(3)]

    # when / then: a fourth is refused, and nothing is written
    refused = customer_client.post(ORDERS, body, format="json")
    assert assert_error(refused, 409, "too_many_open_orders") == {
        "open_orders": 3, "max_open_orders": 3,
    }
    assert Order.objects.count() == 3

    # another customer is not limited by these
    assert client_for(other_customer).post(ORDERS, body, format="json").status_code == 201

    # a delivered and a cancelled order no longer count
    Order.objects.filter(pk=placed[0]).update(status="delivered")
    cancel = customer_client.post(f"{ORDERS}/{placed[1]}/cancel", {}, format="json")
    assert cancel.status_code == 200
    assert customer_client.post(ORDERS, body, format="json").status_code == 201
    assert customer_client.post(ORDERS, body, format="json").status_code == 201
    assert_error(customer_client.post(ORDERS, body, format="json"), 409, "too_many_open_orders")


def test_zero_means_no_open_orders_limit(customer_client, store, stocked, settings):
    settings.MAX_OPEN_ORDERS_PER_CUSTOMER = 0
    stock = stocked(on_hand=100)
    body = order_body(store.id, (stock.product_id, 1))

    statuses = [customer_client.post(ORDERS, body, format="json").status_code for _ in range(7)]

    assert statuses == [201] * 7


def test_a_refused_order_with_a_key_is_not_stored_and_goes_through_once_open(
    customer_client, store, stocked
):
    stock = stocked()
    Store.objects.filter(pk=store.pk).update(accepting_orders=False)
    body = order_body(store.id, (stock.product_id, 1))

    first = customer_client.post(ORDERS, body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    Store.objects.filter(pk=store.pk).update(accepting_orders=True)
    second = customer_client.post(ORDERS, body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")

    assert_error(first, 409, "store_closed")
    assert second.status_code == 201, second.content
    assert IdempotencyKey.objects.count() == 1 and Order.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_the_rules_cost_no_extra_statement(
    customer, store, stocked, settings, django_assert_num_queries
):
    # given a store with hours, a time zone, a radius, and the open-orders limit on
    settings.MAX_OPEN_ORDERS_PER_CUSTOMER = 5
    Store.objects.filter(pk=store.pk).update(
        opening_hours=ALL_DAY, timezone="Europe/Amsterdam", delivery_radius_m=5_000
    )
    client = client_for(customer)
    body = order_body(store.id, (stocked().product_id, 1))
    client.get("/api/me")

    # when
    with django_assert_num_queries(4):
        response = client.post(ORDERS, body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")

    # then: the same four statements as a v1 store's order (the user, the key, the store
    # with its offers, its rules, the open-orders count and the number, the write)
    assert response.status_code == 201, response.content
