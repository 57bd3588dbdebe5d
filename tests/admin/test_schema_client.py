"""A client generated from the admin schema names every operation for what it does."""

from __future__ import annotations

import pytest

from tests.schema_client import GeneratedClient, generate_client, page_operations

# The generated client's operation modules (one tag, "admin"): part of the admin contract.
OPERATIONS = {
    "admin": {
        "admin_auth_token_create", "admin_auth_token_refresh_create", "admin_auth_logout_create",
        "admin_orders_list", "admin_orders_retrieve", "admin_orders_cancel_create",
        "admin_orders_picking_start_create", "admin_orders_picking_complete_create",
        "admin_orders_delivery_complete_create",  # v1.1, proof of delivery
        "admin_orders_picking_lines_create",  # v1.1, short picks and substitutions
        "admin_stores_list", "admin_stores_create", "admin_stores_partial_update",
        "admin_stores_stock_list", "admin_stores_stock_adjustments_create",
        "admin_products_list", "admin_products_create", "admin_products_partial_update",
        "admin_couriers_list", "admin_couriers_create", "admin_couriers_partial_update",
        "admin_customers_list",
        "admin_staff_list", "admin_staff_create", "admin_staff_partial_update",
        "admin_events_stats_retrieve", "admin_events_dead_letters_list",
        "admin_events_dead_letters_replay_create", "admin_events_dead_letters_discard_create",
    },
}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> GeneratedClient:
    return generate_client(tmp_path_factory.mktemp("admin-client"))


def test_a_client_generated_from_the_admin_schema_names_lists_as_lists(
    client: GeneratedClient,
) -> None:
    assert client.modules == OPERATIONS
    assert {"admin_orders_list", "admin_stores_list", "admin_events_dead_letters_list"} <= (
        client.modules["admin"]
    )
    assert client.seconds < 10


def test_every_admin_operation_answering_a_page_is_named_a_list(client: GeneratedClient) -> None:
    pages = page_operations(client.schema)

    assert set(pages) >= {
        "GET /api/admin/orders", "GET /api/admin/stores", "GET /api/admin/products",
        "GET /api/admin/stores/{store_id}/stock", "GET /api/admin/couriers",
        "GET /api/admin/customers", "GET /api/admin/staff", "GET /api/admin/events/dead-letters",
    }
    assert {op for op in pages.values() if not op.endswith("_list")} == set()
