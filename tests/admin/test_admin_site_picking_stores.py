"""The admin site's store page (issue 12, "back office"): staff read a store's weekly hours
one weekday a line, Monday first, see when a closed store opens again, and get the admin
API's message for every radius out of range. (Editing hours, time zone, pause, radius and
hand-off is tested in tests/admin/test_store_hours_api.py and
tests/admin/test_admin_delivery_complete.py.)
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from lokaly_core.catalog.models import Store
from tests.factories import StoreFactory

pytestmark = pytest.mark.django_db


def _form(store: Store, **changes: Any) -> dict[str, Any]:
    data = {
        "name": store.name, "address": store.address, "lat": store.lat, "lng": store.lng,
        "is_active": "on", "accepting_orders": "on", "timezone": store.timezone,
        "opening_hours": "", "delivery_radius_m": "",
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def _page(client: Client, store: Store) -> str:
    response = client.get(reverse("admin:core_store_change", args=[store.pk]))
    assert response.status_code == 200
    return response.content.decode()


def _hours_text(html: str) -> str:
    match = re.search(r'<textarea name="opening_hours"[^>]*>\n?(.*?)</textarea>', html, re.S)
    assert match, "no opening_hours text area"
    return match.group(1).replace("&quot;", '"')


def _next_opening(html: str) -> str:
    match = re.search(
        r'class="form-row[^"]*field-next_opening".*?<div class="readonly">(.*?)</div>', html, re.S
    )
    assert match, "no next opening on the page"
    return match.group(1).strip().replace("&#x27;", "'")


def test_hours_show_one_weekday_a_line_monday_first(site_client: Client) -> None:
    store = StoreFactory.create()
    url = reverse("admin:core_store_change", args=[store.pk])
    saved = site_client.post(url, _form(
        store, opening_hours='{"sun": [["10:00", "16:00"]], "mon": [["08:00", "22:00"]]}'
    ))
    assert saved.status_code == 302, saved.content.decode()[-2000:]

    text = _hours_text(_page(site_client, store))

    assert text.splitlines() == [
        "{",
        '  "mon": [["08:00", "22:00"]],',
        '  "tue": [],',
        '  "wed": [],',
        '  "thu": [],',
        '  "fri": [],',
        '  "sat": [],',
        '  "sun": [["10:00", "16:00"]]',
        "}",
    ]
    # What the page shows is what it takes back unchanged.
    again = site_client.post(url, _form(store, opening_hours=text))
    assert again.status_code == 302
    store.refresh_from_db()
    assert store.opening_hours is not None
    assert store.opening_hours["mon"] == [["08:00", "22:00"]]
    assert store.opening_hours["sun"] == [["10:00", "16:00"]]


def test_a_store_always_open_shows_null_and_takes_an_empty_field(site_client: Client) -> None:
    store = StoreFactory.create()

    assert _hours_text(_page(site_client, store)) == "null"
    response = site_client.post(
        reverse("admin:core_store_change", args=[store.pk]), _form(store, opening_hours="")
    )

    assert response.status_code == 302
    store.refresh_from_db()
    assert store.opening_hours is None


def test_a_refused_schedule_is_shown_again_as_typed(site_client: Client) -> None:
    store = StoreFactory.create()

    response = site_client.post(
        reverse("admin:core_store_change", args=[store.pk]),
        _form(store, opening_hours='{"mon": [["08:00", "12:00"], ["11:00", "14:00"]]}'),
    )

    html = response.content.decode()
    assert response.status_code == 200
    assert "The intervals mon 08:00-12:00 and mon 11:00-14:00 overlap." in html
    assert '"mon": [["08:00", "12:00"], ["11:00", "14:00"]]' in _hours_text(html)


@pytest.mark.parametrize("radius", ["-5", "0", "99", "50001"])
def test_every_radius_out_of_range_gets_the_apis_message(site_client: Client, radius: str) -> None:
    store = StoreFactory.create()

    response = site_client.post(
        reverse("admin:core_store_change", args=[store.pk]),
        _form(store, delivery_radius_m=radius),
    )

    assert response.status_code == 200
    assert "From 100 to 50,000 metres, or empty." in response.content.decode()
    store.refresh_from_db()
    assert store.delivery_radius_m is None


def test_next_opening_of_an_open_a_paused_and_a_closed_store(site_client: Client) -> None:
    open_store = StoreFactory.create()
    paused = StoreFactory.create(is_open=False)
    now = timezone.now().astimezone(UTC)
    # Open only on the weekday three days from now, 10:00 to 11:00 UTC.
    day = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[(now + timedelta(days=3)).weekday()]
    closed = StoreFactory.create(opening_hours={day: [["10:00", "11:00"]]})
    opens = datetime.combine((now + timedelta(days=3)).date(), datetime.min.time(), UTC).replace(
        hour=10
    )

    assert _next_opening(_page(site_client, open_store)) == "open now"
    assert _next_opening(_page(site_client, paused)).startswith("paused: takes no orders until")
    assert _next_opening(_page(site_client, closed)) == (
        f"{opens:%Y-%m-%d %H:%M} UTC ({opens:%a %H:%M} UTC)"
    )


def test_next_opening_is_told_in_the_stores_time_zone_too(site_client: Client) -> None:
    now = timezone.now().astimezone(UTC)
    day = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[(now + timedelta(days=3)).weekday()]
    store = StoreFactory.create(
        timezone="Asia/Tokyo", opening_hours={day: [["09:30", "10:00"]]}  # UTC+9, no DST
    )

    text = _next_opening(_page(site_client, store))

    assert text.endswith(" 09:30 Asia/Tokyo)")
    assert " 00:30 UTC (" in text
