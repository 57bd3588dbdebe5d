"""Staff set a store's v1.1 options (hours, time zone, pause, delivery radius, hand-off
code) over the admin API and on the admin site (docs/admin-api.md)."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from lokaly_core.catalog.models import Store
from lokaly_core.domain.hours import WEEKDAYS
from tests.admin.test_catalog import STORE, staff_client
from tests.factories import StoreFactory
from tests.public.conftest import assert_error

HOURS = {"mon": [["08:00", "22:00"]], "sat": [["22:00", "02:00"]]}
EVERY_DAY: dict[str, list[list[str]]] = {day: [] for day in WEEKDAYS}


@pytest.fixture
def admin(db: None) -> APIClient:
    return staff_client()


def test_a_new_store_has_the_v1_defaults(admin: APIClient) -> None:
    response = admin.post("/api/admin/stores", STORE, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert {k: body[k] for k in (
        "is_open", "accepting_orders", "timezone", "opening_hours", "delivery_radius_m",
        "requires_handoff_code",
    )} == {
        "is_open": True, "accepting_orders": True, "timezone": "UTC", "opening_hours": None,
        "delivery_radius_m": None, "requires_handoff_code": False,
    }


def test_create_with_every_option_stores_and_answers_them(admin: APIClient) -> None:
    body = {
        **STORE, "timezone": "Europe/Amsterdam", "opening_hours": HOURS,
        "accepting_orders": False, "delivery_radius_m": 3_000, "requires_handoff_code": True,
    }

    response = admin.post("/api/admin/stores", body, format="json")

    assert response.status_code == 201, response.content
    out = response.json()
    assert out["opening_hours"] == {**EVERY_DAY, **HOURS}
    assert (out["timezone"], out["accepting_orders"], out["is_open"]) == (
        "Europe/Amsterdam", False, False
    )
    assert (out["delivery_radius_m"], out["requires_handoff_code"]) == (3_000, True)
    store = Store.objects.get(pk=out["id"])
    assert store.opening_hours == {**EVERY_DAY, **HOURS}
    assert (store.timezone, store.accepting_orders, store.delivery_radius_m) == (
        "Europe/Amsterdam", False, 3_000
    )
    assert store.requires_handoff_code is True


def test_patch_pauses_and_resumes_a_store_and_leaves_the_rest(admin: APIClient) -> None:
    store = StoreFactory.create(timezone="Asia/Tokyo", delivery_radius_m=2_000)

    url = f"/api/admin/stores/{store.id}"
    paused = admin.patch(url, {"accepting_orders": False}, format="json")
    resumed = admin.patch(url, {"accepting_orders": True}, format="json")

    assert paused.status_code == 200, paused.content
    assert (paused.json()["accepting_orders"], paused.json()["is_open"]) == (False, False)
    assert (resumed.json()["accepting_orders"], resumed.json()["is_open"]) == (True, True)
    store.refresh_from_db()
    assert (store.timezone, store.delivery_radius_m, store.name) == (
        "Asia/Tokyo", 2_000, resumed.json()["name"]
    )


def test_patch_clears_the_hours_and_the_radius_with_null(admin: APIClient) -> None:
    store = StoreFactory.create(opening_hours={**EVERY_DAY, **HOURS}, delivery_radius_m=2_000)

    response = admin.patch(
        f"/api/admin/stores/{store.id}",
        {"opening_hours": None, "delivery_radius_m": None},
        format="json",
    )

    assert response.status_code == 200, response.content
    store.refresh_from_db()
    assert (store.opening_hours, store.delivery_radius_m) == (None, None)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("timezone", "Mars/Olympus", "'Mars/Olympus' is not an IANA time zone name."),
        ("timezone", "", "This field may not be blank."),
        ("opening_hours", {"monday": []}, "Unknown weekday keys: monday; use mon ... sun."),
        ("opening_hours", {"mon": [["08:00", "24:00"]]},
         "mon[0]: times are HH:MM from 00:00 to 23:59."),
        ("opening_hours", {"mon": [["08:00", "08:00"]]},
         "mon[0]: the start and the end must differ."),
        ("opening_hours", {"mon": [["08:00", "12:00"], ["11:00", "14:00"]]},
         "The intervals mon 08:00-12:00 and mon 11:00-14:00 overlap."),
        ("opening_hours", [["08:00", "12:00"]],
         'An object of weekdays ("mon" ... "sun") to lists of intervals.'),
        ("delivery_radius_m", 99, "Ensure this value is greater than or equal to 100."),
        ("delivery_radius_m", 50_001, "Ensure this value is less than or equal to 50000."),
        ("delivery_radius_m", "500", "A valid integer is required."),
        ("delivery_radius_m", True, "A valid integer is required."),
        ("accepting_orders", "maybe", "Must be a valid boolean."),
        ("requires_handoff_code", None, "This field may not be null."),
    ],
)
def test_invalid_options_are_400_validation_error_on_the_field(
    admin: APIClient, field: str, value: Any, message: str
) -> None:
    store = StoreFactory.create()

    created = admin.post("/api/admin/stores", {**STORE, field: value}, format="json")
    patched = admin.patch(f"/api/admin/stores/{store.id}", {field: value}, format="json")

    for response in (created, patched):
        assert assert_error(response, 400, "validation_error") == {field: [message]}
    assert Store.objects.count() == 1
    assert Store.objects.get().opening_hours is None


def test_the_stores_list_shows_the_options(admin: APIClient) -> None:
    StoreFactory.create(opening_hours={**EVERY_DAY, "sun": [["10:00", "11:00"]]}, is_open=False)

    (row,) = admin.get("/api/admin/stores").json()["results"]

    assert row["opening_hours"]["sun"] == [["10:00", "11:00"]]
    assert (row["is_open"], row["accepting_orders"]) == (False, False)


# -- the admin site ----------------------------------------------------------------------


def _form(store: Store, **changes: Any) -> dict[str, Any]:
    data = {
        "name": store.name, "address": store.address, "lat": store.lat, "lng": store.lng,
        "is_active": "on", "accepting_orders": "on", "timezone": store.timezone,
        "opening_hours": "null", "delivery_radius_m": "",
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def test_staff_edit_hours_pause_radius_and_handoff_on_the_site(site_client: Client) -> None:
    store = StoreFactory.create()
    url = reverse("admin:core_store_change", args=[store.pk])

    response = site_client.post(url, _form(
        store, accepting_orders=None, timezone="Europe/Amsterdam",
        opening_hours='{"sat": [["22:00", "02:00"]], "mon": [["08:00", "22:00"]]}',
        delivery_radius_m="4000", requires_handoff_code="on",
    ))

    assert response.status_code == 302, response.content.decode()[-3000:]
    store.refresh_from_db()
    assert store.accepting_orders is False
    assert (store.timezone, store.delivery_radius_m, store.requires_handoff_code) == (
        "Europe/Amsterdam", 4_000, True
    )
    assert store.opening_hours == {**EVERY_DAY, **HOURS}
    page = site_client.get(url).content.decode()
    assert "Taking orders" in page and "Open now" in page


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"timezone": "Nowhere/Town"}, "&#x27;Nowhere/Town&#x27; is not an IANA time zone name."),
        ({"opening_hours": '{"mon": [["25:00", "26:00"]]}'},
         "mon[0]: times are HH:MM from 00:00 to 23:59."),
        ({"delivery_radius_m": "60000"}, "From 100 to 50,000 metres, or empty."),
    ],
)
def test_the_site_refuses_invalid_options_with_the_apis_messages(
    site_client: Client, changes: dict[str, str], message: str
) -> None:
    store = StoreFactory.create()

    response = site_client.post(reverse("admin:core_store_change", args=[store.pk]),
                                _form(store, **changes))

    assert response.status_code == 200
    assert message in response.content.decode()
    store.refresh_from_db()
    assert (store.timezone, store.opening_hours, store.delivery_radius_m) == ("UTC", None, None)


def test_the_store_list_on_the_site_shows_open_now(site_client: Client) -> None:
    StoreFactory.create(name="Paused one", is_open=False)

    html = site_client.get(reverse("admin:core_store_changelist")).content.decode()

    assert "Paused one" in html and 'class="field-open_now"' in html
