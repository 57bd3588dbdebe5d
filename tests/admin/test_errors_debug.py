"""With DEBUG on (``make dev``) the admin server's errors keep the contract's shape, exactly
as in production; the admin site's own pages stay HTML.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from tests.debug_errors import assert_bug_answers_500_envelope_and_is_logged, production_answer
from tests.public.conftest import assert_error


@pytest.mark.parametrize(
    "path",
    [
        "/api/no-such-route",
        "/api/admin/no-such-route",
        "/api/admin/orders/not-a-uuid",
        "/nope",
    ],
)
def test_an_unknown_route_is_the_not_found_envelope_in_debug(
    debug: Any, api_client: APIClient, db: None, path: str
) -> None:
    response = api_client.get(path)

    assert_error(response, 404, "not_found")
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"]["message"] == f"No resource at {path}."
    assert int(response["Content-Length"]) == len(response.content)
    assert production_answer(debug, api_client, path) == (404, response.json())


def test_an_unknown_admin_site_page_is_not_found_as_in_production(
    debug: Any, site_client: Client
) -> None:
    response = site_client.get("/admin/no-such-page/")

    assert_error(response, 404, "not_found")
    assert production_answer(debug, site_client, "/admin/no-such-page/") == (404, response.json())


def test_the_admin_site_pages_stay_html_in_debug(debug: Any, site_client: Client) -> None:
    response = site_client.get("/admin/core/order/")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")


def test_a_request_for_another_host_is_a_malformed_request_in_debug(
    debug: Any, api_client: APIClient, db: None
) -> None:
    response = api_client.get("/api/admin/orders", HTTP_HOST="evil.example")

    assert_error(response, 400, "malformed_request")


def test_a_wrong_method_is_method_not_allowed_in_debug(
    debug: Any, api_client: APIClient, db: None
) -> None:
    assert_error(api_client.delete("/api/admin/auth/token"), 405, "method_not_allowed")


@pytest.mark.urls("tests.admin.debug_urls")
def test_a_bug_is_the_internal_error_envelope_in_debug_and_its_traceback_is_logged(
    debug: Any, db: None, caplog: pytest.LogCaptureFixture
) -> None:
    assert_bug_answers_500_envelope_and_is_logged(caplog)
