"""``GET /api/notifications`` and ``POST /api/notifications/{id}/read``."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from lokaly_core.notifications.models import Notification
from tests.conftest import client_for
from tests.public.conftest import ISO_UTC, assert_error

NOTIFICATIONS = "/api/notifications"


def _notify(user, *, minutes_ago: int = 0, order=None, read: bool = False, **fields):
    at = timezone.now() - timedelta(minutes=minutes_ago)
    return Notification.objects.create(
        user=user,
        type=fields.pop("type", "order.confirmed"),
        title=fields.pop("title", "Order confirmed"),
        body=fields.pop("body", "Your order is confirmed."),
        order=order,
        created_at=at,
        next_send_at=at,
        read_at=at if read else None,
        **fields,
    )


def _read(client, notification):
    return client.post(f"{NOTIFICATIONS}/{notification.id}/read")


def test_list_returns_the_callers_notifications_newest_first(
    customer_client, customer, other_customer, place, stocked
):
    order = place(customer, (stocked().product_id, 1))
    older = _notify(customer, minutes_ago=5, read=True)
    newer = _notify(customer, order=order, type="delivery.assigned", title="On its way",
                    body="A courier is coming.")
    _notify(other_customer)

    response = customer_client.get(NOTIFICATIONS)

    assert response.status_code == 200
    body = response.json()
    assert body["next"] is None and body["previous"] is None
    assert [n["id"] for n in body["results"]] == [str(newer.id), str(older.id)]
    first, second = body["results"]
    assert first == {
        "id": str(newer.id),
        "type": "delivery.assigned",
        "title": "On its way",
        "body": "A courier is coming.",
        "order_id": str(order.id),
        "created_at": first["created_at"],
        "read_at": None,
    }
    assert ISO_UTC.match(first["created_at"])
    assert second["order_id"] is None
    assert ISO_UTC.match(second["read_at"])


def test_couriers_have_notifications_too(courier_client, courier):
    mine = _notify(courier, type="delivery.assigned")

    assert [n["id"] for n in courier_client.get(NOTIFICATIONS).json()["results"]] == [str(mine.id)]


def test_unread_filter(customer_client, customer):
    _notify(customer, minutes_ago=2, read=True)
    unread = _notify(customer, minutes_ago=1)

    only_unread = customer_client.get(NOTIFICATIONS, {"unread": "true"}).json()["results"]
    everything = customer_client.get(NOTIFICATIONS, {"unread": "false"}).json()["results"]

    assert [n["id"] for n in only_unread] == [str(unread.id)]
    assert len(everything) == 2


def test_unread_must_be_a_boolean(customer_client, customer):
    details = assert_error(
        customer_client.get(NOTIFICATIONS, {"unread": "maybe"}), 400, "validation_error"
    )

    assert list(details) == ["unread"]


def test_list_is_cursor_paginated(customer_client, customer):
    made = [_notify(customer, minutes_ago=n) for n in range(5)]

    first = customer_client.get(NOTIFICATIONS, {"page_size": 2}).json()
    second = customer_client.get(first["next"]).json()

    assert [n["id"] for n in first["results"]] == [str(m.id) for m in made[:2]]
    assert [n["id"] for n in second["results"]] == [str(m.id) for m in made[2:4]]
    assert second["previous"] is not None


def test_reading_marks_it_read_once(customer_client, customer):
    notification = _notify(customer)

    response = _read(customer_client, notification)

    assert response.status_code == 204
    assert response.content == b""
    first_read = Notification.objects.get(pk=notification.pk).read_at
    assert first_read is not None
    assert _read(customer_client, notification).status_code == 204
    assert Notification.objects.get(pk=notification.pk).read_at == first_read
    listed = customer_client.get(NOTIFICATIONS).json()["results"][0]
    assert listed["read_at"] is not None


def test_another_users_notification_is_not_found(customer_client, other_customer):
    theirs = _notify(other_customer)

    assert_error(_read(customer_client, theirs), 404, "not_found")
    assert Notification.objects.get(pk=theirs.pk).read_at is None


def test_an_unknown_notification_is_not_found(customer_client, db):
    response = customer_client.post(f"{NOTIFICATIONS}/{uuid.uuid4()}/read")

    assert_error(response, 404, "not_found")


@pytest.mark.parametrize(("method", "path"), [("get", NOTIFICATIONS),
                                              ("post", f"{NOTIFICATIONS}/{uuid.uuid4()}/read")])
def test_notifications_need_a_public_token(api_client, staff_user, method, path):
    assert_error(getattr(api_client, method)(path), 401, "not_authenticated")
    staff = client_for(staff_user)  # a public-realm token of a staff account
    assert getattr(staff, method)(path).status_code == 401
