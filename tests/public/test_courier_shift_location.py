"""``POST /api/courier/shift`` and ``POST /api/courier/location``."""

from __future__ import annotations

import json

import pytest

from lokaly_core.delivery.location import last_location
from lokaly_core.delivery.models import CourierState
from lokaly_core.outbox.models import OutboxEvent
from tests.public.conftest import ISO_UTC, assert_error

SHIFT = "/api/courier/shift"
LOCATION = "/api/courier/location"


# -- shift ----------------------------------------------------------------------------------


def test_going_online_and_offline(courier_client, courier):
    on = courier_client.post(SHIFT, {"online": True}, format="json")
    assert on.status_code == 200
    assert on.json() == {"online": True}
    assert CourierState.objects.get(pk=courier.id).is_online

    off = courier_client.post(SHIFT, {"online": False}, format="json")

    assert off.status_code == 200
    assert off.json() == {"online": False}
    assert not CourierState.objects.get(pk=courier.id).is_online


def test_going_online_announces_the_courier_once(courier_client, courier):
    courier_client.post(SHIFT, {"online": True}, format="json")
    courier_client.post(SHIFT, {"online": True}, format="json")

    events = OutboxEvent.objects.filter(aggregate_id=courier.id, type="courier.available")
    assert events.count() == 1


@pytest.mark.parametrize("body", [{}, {"online": "yes"}, {"online": 1}, {"online": None}])
def test_shift_needs_a_json_boolean(courier_client, courier, body):
    details = assert_error(courier_client.post(SHIFT, body, format="json"), 400, "validation_error")

    assert list(details) == ["online"]
    assert not CourierState.objects.filter(pk=courier.id).exists()


# -- location -------------------------------------------------------------------------------


def test_a_location_is_stored_for_dispatch_and_kept_as_the_last_one(courier_client, courier):
    response = courier_client.post(LOCATION, {"lat": 52.3702, "lng": 4.8952}, format="json")

    assert response.status_code == 204
    assert response.content == b""
    state = CourierState.objects.get(pk=courier.id)
    assert (state.lat, state.lng) == (52.3702, 4.8952)
    assert state.location_at is not None
    assert not state.is_online  # a location is not a shift
    last = last_location(courier.id)
    assert last is not None
    assert last["lat"] == 52.3702 and last["lng"] == 4.8952
    assert ISO_UTC.match(last["recorded_at"])


def test_the_database_copy_is_written_at_most_once_per_interval(courier_client, courier, settings):
    settings.COURIER_LOCATION_WRITE_SECONDS = 60
    courier_client.post(LOCATION, {"lat": 52.0, "lng": 4.0}, format="json")

    response = courier_client.post(LOCATION, {"lat": 52.5, "lng": 4.5}, format="json")

    assert response.status_code == 204
    state = CourierState.objects.get(pk=courier.id)
    assert (state.lat, state.lng) == (52.0, 4.0)
    last = last_location(courier.id)
    assert last is not None
    assert (last["lat"], last["lng"]) == (52.5, 4.5)


def test_a_location_keeps_the_shift(courier_client, courier):
    courier_client.post(SHIFT, {"online": True}, format="json")

    courier_client.post(LOCATION, {"lat": -33.9, "lng": 151.2}, format="json")

    state = CourierState.objects.get(pk=courier.id)
    assert state.is_online
    assert (state.lat, state.lng) == (-33.9, 151.2)


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({}, {"lat", "lng"}),
        ({"lat": 90.5, "lng": 0}, {"lat"}),
        ({"lat": -90.5, "lng": 0}, {"lat"}),
        ({"lat": 0, "lng": 180.1}, {"lng"}),
        ({"lat": 0, "lng": -181}, {"lng"}),
        ({"lat": "52.3", "lng": 4.8}, {"lat"}),
        ({"lat": True, "lng": 4.8}, {"lat"}),
        ({"lat": None, "lng": None}, {"lat", "lng"}),
        ({"lat": [1], "lng": {"a": 1}}, {"lat", "lng"}),
    ],
)
def test_location_validation(courier_client, courier, body, fields):
    details = assert_error(
        courier_client.post(LOCATION, body, format="json"), 400, "validation_error"
    )

    assert set(details) == fields
    assert not CourierState.objects.filter(pk=courier.id).exists()


@pytest.mark.parametrize("raw", ['{"lat": 1e999, "lng": 0}', '{"lat": 0, "lng": -1e400}'])
def test_location_refuses_infinite_numbers(courier_client, courier, raw):
    response = courier_client.post(LOCATION, raw, content_type="application/json")

    assert_error(response, 400, "validation_error")


@pytest.mark.parametrize("raw", ['{"lat": NaN, "lng": 0}', '{"lat": Infinity, "lng": 0}'])
def test_location_refuses_non_json_numbers(courier_client, courier, raw):
    response = courier_client.post(LOCATION, raw, content_type="application/json")

    assert_error(response, 400, "malformed_request")


def test_the_edges_of_the_ranges_are_accepted(courier_client, courier):
    for lat, lng in [(90, 180), (-90, -180)]:
        response = courier_client.post(LOCATION, json.dumps({"lat": lat, "lng": lng}),
                                       content_type="application/json")
        assert response.status_code == 204, response.content
