"""A client generated from the public schema names every operation for what it does."""

from __future__ import annotations

import pytest

from tests.schema_client import GeneratedClient, generate_client, page_operations

# The generated client's operation modules, by tag: part of the contract the apps see.
OPERATIONS = {
    "auth": {
        "auth_register_create", "auth_token_create", "auth_token_refresh_create",
        "auth_logout_create", "auth_password_create",
    },
    "me": {"me_retrieve"},
    "stores": {"stores_list", "stores_products_list"},
    "orders": {
        "orders_list", "orders_create", "orders_retrieve", "orders_history_list",
        "orders_cancel_create",
        "orders_substitutions_create",  # v1.1: the customer's answer to a substitute
    },
    "courier": {
        "courier_shift_create", "courier_location_create", "courier_deliveries_list",
        "courier_deliveries_pickup_create", "courier_deliveries_complete_create",
        "courier_deliveries_decline_create",
    },
    "notifications": {"notifications_list", "notifications_read_create"},
}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> GeneratedClient:
    return generate_client(tmp_path_factory.mktemp("public-client"))


def test_a_client_generated_from_the_schema_names_lists_as_lists(client):
    assert client.modules == OPERATIONS
    assert client.modules["stores"] == {"stores_list", "stores_products_list"}
    assert "orders_list" in client.modules["orders"]
    assert client.seconds < 10


def test_every_operation_answering_a_page_is_named_a_list(client):
    pages = page_operations(client.schema)

    assert set(pages) >= {
        "GET /api/stores", "GET /api/stores/{store_id}/products", "GET /api/orders",
        "GET /api/courier/deliveries", "GET /api/notifications",
    }
    assert {op for op in pages.values() if not op.endswith("_list")} == set()
