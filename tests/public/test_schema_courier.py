"""The OpenAPI schema documents the courier and notification endpoints, and is clean."""

from __future__ import annotations

import pytest
import yaml
from django.core.management import call_command

COURIER_PATHS = {
    "/api/courier/shift": {"post"},
    "/api/courier/location": {"post"},
    "/api/courier/deliveries": {"get"},
    "/api/courier/deliveries/{delivery_id}/pickup": {"post"},
    "/api/courier/deliveries/{delivery_id}/complete": {"post"},
    "/api/courier/deliveries/{delivery_id}/decline": {"post"},
    "/api/notifications": {"get"},
    "/api/notifications/{notification_id}/read": {"post"},
}


@pytest.fixture
def schema(api_client, db) -> dict:
    response = api_client.get("/api/schema/")
    assert response.status_code == 200
    return yaml.safe_load(response.content)


def _ref(schema: dict, node: dict) -> dict:
    if "$ref" not in node:
        return node
    return schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]


def test_every_courier_and_notification_path_is_documented(schema):
    for path, methods in COURIER_PATHS.items():
        assert methods <= set(schema["paths"][path]), path


def test_the_schema_validates_without_warnings(tmp_path, db):
    # --validate checks it against the OpenAPI 3 JSON schema; warnings (e.g. a view whose
    # serializer cannot be guessed, two choice sets under one name) fail the run
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "s.yaml"))


def test_deliveries_and_notifications_are_cursor_pages(schema):
    pages = [("/api/courier/deliveries", "Delivery"), ("/api/notifications", "Notification")]
    for path, item in pages:
        get = schema["paths"][path]["get"]
        page = _ref(schema, get["responses"]["200"]["content"]["application/json"]["schema"])
        assert set(page["properties"]) == {"results", "next", "previous"}
        assert page["properties"]["results"]["items"]["$ref"].endswith(f"/{item}")
        assert {"cursor", "page_size"} <= {p["name"] for p in get["parameters"]}


def test_bodies_and_answers_are_documented(schema):
    components = schema["components"]["schemas"]
    location = schema["paths"]["/api/courier/location"]["post"]
    assert set(location["responses"]) == {"204"}
    body = _ref(schema, location["requestBody"]["content"]["application/json"]["schema"])
    assert set(body["properties"]) == {"lat", "lng"}
    assert set(body["required"]) == {"lat", "lng"}
    assert set(components["Notification"]["properties"]) == {
        "id", "type", "title", "body", "order_id", "created_at", "read_at",
    }
    assert {"id", "order_id", "status", "store", "delivery_address", "assigned_at"} <= set(
        components["Delivery"]["properties"]
    )
    delivery = _ref(schema, components["OrderOut"]["properties"]["delivery"])
    if "allOf" in delivery:
        delivery = _ref(schema, delivery["allOf"][0])
    assert set(delivery["properties"]) == {
        "id", "status", "courier", "assigned_at", "picked_up_at", "delivered_at",
    }
