"""``/api/schema/`` (OpenAPI 3) and ``/api/docs/``."""

from __future__ import annotations

import re

import pytest
import yaml
from django.core.management import call_command

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


def _docs_assets(client) -> list[str]:
    """The URLs of the files the docs page loads (scripts, stylesheet, icon)."""
    page = client.get("/api/docs/").content.decode()
    return re.findall(r'<(?:script|link)[^>]* (?:src|href)="([^"]+)"', page)


def test_the_docs_page_loads_swagger_ui_from_this_server_not_a_cdn(api_client, db):
    assets = _docs_assets(api_client)

    assert sorted(a.rsplit("/", 1)[1] for a in assets) == [
        "favicon-32x32.png", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js",
        "swagger-ui.css",
    ]
    assert all(a.startswith("/static/drf_spectacular_sidecar/swagger-ui-dist/") for a in assets)


def _get_file(client, url: str) -> tuple[int, str, bytes]:
    response = client.get(url)
    body = b"".join(response.streaming_content) if response.streaming else response.content
    return response.status_code, response["Content-Type"], body


def test_the_swagger_ui_bundle_is_served(api_client, db):
    (bundle,) = [a for a in _docs_assets(api_client) if a.endswith("/swagger-ui-bundle.js")]

    status, content_type, body = _get_file(api_client, bundle)

    assert status == 200
    assert content_type.startswith("text/javascript")
    assert len(body) > 500_000
    assert b"SwaggerUIBundle" in body


def test_the_docs_files_are_served_from_static_root_in_production(
    api_client, db, settings, tmp_path
):
    # given production's static files: collected into STATIC_ROOT, no finders
    settings.STATIC_ROOT = tmp_path
    settings.WHITENOISE_USE_FINDERS = False
    settings.WHITENOISE_AUTOREFRESH = False
    call_command("collectstatic", "--noinput", verbosity=0)

    # when the page's files are fetched, then each is served from there
    for asset in _docs_assets(api_client):
        assert _get_file(api_client, asset)[0] == 200, asset
    assert _get_file(api_client, "/static/drf_spectacular_sidecar/no-such.js")[0] == 404
