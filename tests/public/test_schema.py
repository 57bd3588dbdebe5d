"""``/api/schema/`` (OpenAPI 3) and ``/api/docs/``."""

from __future__ import annotations

import pytest
import yaml

CONTRACT_PATHS = {
    "/api/auth/register": {"post"},
    "/api/auth/token": {"post"},
    "/api/auth/token/refresh": {"post"},
    "/api/me": {"get"},
    "/api/stores": {"get"},
    "/api/stores/{store_id}/products": {"get"},
    "/api/orders": {"get", "post"},
    "/api/orders/{order_id}": {"get"},
    "/api/orders/{order_id}/history": {"get"},
    "/api/orders/{order_id}/cancel": {"post"},
}


@pytest.fixture
def schema(api_client, db) -> dict:
    response = api_client.get("/api/schema/")
    assert response.status_code == 200
    return yaml.safe_load(response.content)


def test_schema_is_openapi_3_with_every_customer_path(schema):
    assert schema["openapi"].startswith("3.")
    for path, methods in CONTRACT_PATHS.items():
        assert methods <= set(schema["paths"][path]), path


def test_schema_is_also_served_as_json(api_client, db):
    response = api_client.get("/api/schema/", {"format": "json"})

    assert response.status_code == 200
    assert "/api/orders" in response.json()["paths"]


def test_schema_documents_order_creation(schema):
    post = schema["paths"]["/api/orders"]["post"]

    assert "201" in post["responses"]
    assert {p["name"] for p in post["parameters"] if p["in"] == "header"} == {"Idempotency-Key"}
    created = schema["components"]["schemas"]["OrderOut"]["properties"]
    assert set(created) == {
        "id", "number", "status", "status_version", "store_id", "customer_id", "items",
        "subtotal_cents", "delivery_fee_cents", "total_cents", "currency", "delivery_address",
        "note", "cancel_reason", "delivery", "created_at", "updated_at",
    }


@pytest.mark.parametrize("path", ["/api/orders", "/api/stores", "/api/stores/{store_id}/products"])
def test_schema_documents_lists_as_cursor_pages(schema, path):
    get = schema["paths"][path]["get"]

    page = get["responses"]["200"]["content"]["application/json"]["schema"]
    if "$ref" in page:
        page = schema["components"]["schemas"][page["$ref"].rsplit("/", 1)[1]]
    assert set(page["properties"]) == {"results", "next", "previous"}
    assert page["properties"]["results"]["type"] == "array"
    assert {"cursor", "page_size"} <= {p["name"] for p in get["parameters"]}


def test_schema_declares_bearer_authentication(schema):
    schemes = schema["components"]["securitySchemes"]
    (name, scheme), = schemes.items()

    assert scheme == {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    assert {name: []} in schema["paths"]["/api/orders"]["get"]["security"]
    assert {name: []} in schema["paths"]["/api/me"]["get"]["security"]


def test_docs_render(api_client, db):
    response = api_client.get("/api/docs/")

    assert response.status_code == 200
    assert b"swagger" in response.content.lower()
