"""Proof of delivery (v1.1) on the admin side: the store's option, the admin's completion of
a delivery (audited), and a code that staff never see (API and site)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from lokaly_core.accounts.models import User
from lokaly_core.catalog.models import Store
from lokaly_core.delivery.models import Delivery
from lokaly_core.domain.delivery import delivery_complete, delivery_pickup
from lokaly_core.domain.errors import DomainError
from lokaly_core.domain.model.orders import OrderStatus
from lokaly_core.domain.picking import order_advance_to
from lokaly_core.orders.models import Order
from lokaly_core.orders.selectors import order_events
from lokaly_core.orders.uow import DjangoUnitOfWork
from lokaly_core.outbox.models import OutboxEvent
from tests.admin.test_orders import staff_client
from tests.factories import StockFactory, courier_on_shift, dispatch_confirmed
from tests.public.conftest import assert_error

ORDERS = "/api/admin/orders"


@pytest.fixture
def admin(staff_admin: User) -> APIClient:
    return staff_client(staff_admin)


@pytest.fixture
def out_for_delivery(make_order: Callable[..., Order]) -> Callable[..., Delivery]:
    """``make(requires_code=True, wrong=0)``: a picked-up delivery, after ``wrong`` wrong
    hand-off codes from its courier."""

    def make(*, requires_code: bool = True, wrong: int = 0) -> Delivery:
        stock = StockFactory.create(on_hand=10, store__requires_handoff_code=requires_code)
        courier = courier_on_shift()
        order = make_order(stock, quantity=1, confirm=False)
        delivery = dispatch_confirmed(order.id)
        order_advance_to(
            uow=DjangoUnitOfWork(), clock=timezone.now, order_id=order.id,
            target=OrderStatus.READY,
        )
        delivery_pickup(
            uow=DjangoUnitOfWork(), clock=timezone.now, delivery_id=delivery.id,
            courier_id=courier.id,
        )
        row = Delivery.objects.get(pk=delivery.pk)
        for _ in range(wrong):
            with pytest.raises(DomainError):
                delivery_complete(
                    uow=DjangoUnitOfWork(), clock=timezone.now, delivery_id=row.id,
                    courier_id=courier.id, handoff_code="x",
                )
        row.refresh_from_db()
        return row

    return make


def _complete(client: APIClient, order_id: Any, body: Any) -> Any:
    return client.post(f"{ORDERS}/{order_id}/delivery/complete", body, format="json")


def _leaves(body: Any) -> list[Any]:
    if isinstance(body, dict):
        return [leaf for v in body.values() for leaf in _leaves(v)]
    if isinstance(body, list):
        return [leaf for v in body for leaf in _leaves(v)]
    return [body]


def _keys(body: Any) -> set[str]:
    if isinstance(body, dict):
        return set(body) | {k for v in body.values() for k in _keys(v)}
    if isinstance(body, list):
        return {k for v in body for k in _keys(v)}
    return set()


# -- the admin's completion -------------------------------------------------------------


def test_admin_completes_a_locked_delivery_audited_with_the_admin_and_reason(
    admin: APIClient, staff_admin: User, out_for_delivery: Callable[..., Delivery]
) -> None:
    # given a delivery locked after five wrong codes
    delivery = out_for_delivery(wrong=5)
    assert delivery.handoff_failed_attempts == 5

    # when an admin completes it with a reason
    response = _complete(admin, delivery.order_id, {"reason": "Customer showed ID at the door"})

    # then the order is delivered and the courier free
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "delivered"
    assert body["delivery"]["status"] == "delivered"
    assert Delivery.objects.get(pk=delivery.pk).status == "delivered"
    # and its history names the admin and the reason
    last = Order.objects.get(pk=delivery.order_id).history.order_by("-status_version").first()
    assert last is not None
    assert (last.status, last.previous_status, last.reason, last.actor_id) == (
        "delivered", "out_for_delivery", "Customer showed ID at the door", staff_admin.id,
    )
    detail = admin.get(f"{ORDERS}/{delivery.order_id}").json()
    assert detail["history"][-1]["actor"] == {
        "id": str(staff_admin.id), "email": staff_admin.email, "name": staff_admin.name,
    }
    assert [h["actor"] for h in detail["history"][:-1]] == [None] * (len(detail["history"]) - 1)
    # and the events: the courier's drop-off ones, plus the audit event
    audit = OutboxEvent.objects.get(type="delivery.completed_by_admin")
    assert audit.aggregate_id == delivery.order_id
    assert audit.payload == {
        "delivery_id": str(delivery.id),
        "order_id": str(delivery.order_id),
        "courier_id": str(delivery.courier_id),
        "staff_id": str(staff_admin.id),
        "reason": "Customer showed ID at the door",
        "handoff_locked": True,
        "handoff_failed_attempts": 5,
    }
    types = [e["type"] for e in order_events(delivery.order_id)]
    assert types.count("delivery.completed") == 1
    assert OutboxEvent.objects.filter(
        type="courier.available", payload__reason="delivered"
    ).count() == 1


@pytest.mark.parametrize(
    "body", [{}, {"reason": ""}, {"reason": "   "}, {"reason": "x" * 301}, {"reason": ["a"]}]
)
def test_the_reason_is_required_1_to_300_characters(
    admin: APIClient, out_for_delivery: Callable[..., Delivery], body: dict[str, Any]
) -> None:
    delivery = out_for_delivery(wrong=5)

    response = _complete(admin, delivery.order_id, body)

    assert "reason" in assert_error(response, 400, "validation_error")
    assert Order.objects.get(pk=delivery.order_id).status == "out_for_delivery"
    assert not OutboxEvent.objects.filter(type="delivery.completed_by_admin").exists()


def test_a_reason_of_300_characters_is_taken(
    admin: APIClient, out_for_delivery: Callable[..., Delivery]
) -> None:
    delivery = out_for_delivery()

    response = _complete(admin, delivery.order_id, {"reason": "r" * 300})

    assert response.status_code == 200, response.content
    assert OutboxEvent.objects.get(type="delivery.completed_by_admin").payload[
        "handoff_locked"
    ] is False


def test_an_order_not_out_for_delivery_is_409(
    admin: APIClient, make_order: Callable[..., Order]
) -> None:
    order = make_order(StockFactory.create(on_hand=10))

    response = _complete(admin, order.id, {"reason": "r"})

    assert assert_error(response, 409, "invalid_transition") == {
        "status": "confirmed", "requested": "delivered",
    }


def test_completing_twice_is_409_the_second_time(
    admin: APIClient, out_for_delivery: Callable[..., Delivery]
) -> None:
    delivery = out_for_delivery(wrong=5)
    assert _complete(admin, delivery.order_id, {"reason": "r"}).status_code == 200

    again = _complete(admin, delivery.order_id, {"reason": "r"})

    assert_error(again, 409, "invalid_transition")
    assert OutboxEvent.objects.filter(type="delivery.completed_by_admin").count() == 1


def test_an_unknown_order_is_404(admin: APIClient) -> None:
    response = _complete(admin, "00000000-0000-4000-8000-000000000000", {"reason": "r"})

    assert_error(response, 404, "not_found")


def test_super_admin_may_complete_too(
    staff_super_admin: User, out_for_delivery: Callable[..., Delivery]
) -> None:
    delivery = out_for_delivery(wrong=5)

    response = _complete(staff_client(staff_super_admin), delivery.order_id, {"reason": "r"})

    assert response.status_code == 200, response.content


# -- staff never see the code -----------------------------------------------------------


def test_admin_list_and_detail_never_carry_the_code(
    admin: APIClient, out_for_delivery: Callable[..., Delivery]
) -> None:
    delivery = out_for_delivery(wrong=1)
    code = delivery.handoff_code
    assert code is not None

    listed = admin.get(ORDERS).json()
    detail = admin.get(f"{ORDERS}/{delivery.order_id}").json()

    for body in (listed, detail):
        assert "handoff_code" not in _keys(body)
        assert code not in {str(leaf) for leaf in _leaves(body)}


# -- the store's option (admin API) -----------------------------------------------------


def test_store_option_defaults_to_false_and_is_created_and_patched(admin: APIClient) -> None:
    plain = admin.post(
        "/api/admin/stores", {"name": "A", "address": "x", "lat": 52.0, "lng": 4.0}, format="json"
    )
    coded = admin.post(
        "/api/admin/stores",
        {"name": "B", "address": "x", "lat": 52.0, "lng": 4.0, "requires_handoff_code": True},
        format="json",
    )
    assert plain.status_code == coded.status_code == 201
    assert plain.json()["requires_handoff_code"] is False
    assert coded.json()["requires_handoff_code"] is True

    patched = admin.patch(
        f"/api/admin/stores/{plain.json()['id']}", {"requires_handoff_code": True}, format="json"
    )

    assert patched.status_code == 200
    assert patched.json()["requires_handoff_code"] is True
    assert Store.objects.get(pk=plain.json()["id"]).requires_handoff_code is True
    listed = admin.get("/api/admin/stores").json()["results"]
    assert {s["name"]: s["requires_handoff_code"] for s in listed} == {"A": True, "B": True}


def test_store_option_must_be_a_boolean(admin: APIClient) -> None:
    store = Store.objects.create(name="A", address="x", lat=1, lng=1)

    response = admin.patch(
        f"/api/admin/stores/{store.id}", {"requires_handoff_code": "maybe"}, format="json"
    )

    assert "requires_handoff_code" in assert_error(response, 400, "validation_error")
    assert Store.objects.get(pk=store.pk).requires_handoff_code is False


# -- the Django admin site --------------------------------------------------------------


def test_store_page_edits_the_option(site_client: Client, db: None) -> None:
    store = Store.objects.create(name="Corner", address="Dam 1", lat=52.37, lng=4.89)
    url = reverse("admin:core_store_change", args=[store.pk])
    assert 'name="requires_handoff_code"' in site_client.get(url).content.decode()

    response = site_client.post(
        url,
        {
            "name": "Corner", "address": "Dam 1", "lat": "52.37", "lng": "4.89",
            "is_active": "on", "accepting_orders": "on", "timezone": "UTC",
            "requires_handoff_code": "on",
        },
    )

    assert response.status_code == 302, response.content.decode()[-2000:]
    assert Store.objects.get(pk=store.pk).requires_handoff_code is True


def _order_page(client: Client, order_id: Any) -> str:
    response = client.get(reverse("admin:core_order_change", args=[order_id]))
    assert response.status_code == 200
    return response.content.decode()


def test_order_page_shows_the_attempts_but_never_the_code(
    site_client: Client, out_for_delivery: Callable[..., Delivery]
) -> None:
    delivery = out_for_delivery(wrong=2)
    code = delivery.handoff_code
    assert code is not None

    html = _order_page(site_client, delivery.order_id)

    assert "required; 2 wrong code(s) so far, 3 left" in html
    assert f">{code}<" not in html
    field = html.split("form-row field-handoff")[1][:600]
    assert "Proof of delivery" in field
    assert code not in field


def test_order_page_shows_a_locked_delivery_and_the_admin_in_the_history(
    site_client: Client, staff_admin: User, out_for_delivery: Callable[..., Delivery]
) -> None:
    delivery = out_for_delivery(wrong=5)
    assert "LOCKED after 5 wrong codes" in _order_page(site_client, delivery.order_id)

    _complete(staff_client(staff_admin), delivery.order_id, {"reason": "Checked ID"})

    html = _order_page(site_client, delivery.order_id)
    assert "Checked ID" in html
    assert staff_admin.email in html or staff_admin.name in html


def test_order_page_of_a_store_without_the_option_says_not_required(
    site_client: Client, out_for_delivery: Callable[..., Delivery]
) -> None:
    delivery = out_for_delivery(requires_code=False)

    assert "not required" in _order_page(site_client, delivery.order_id)
