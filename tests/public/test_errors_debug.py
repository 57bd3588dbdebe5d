"""With DEBUG on (``make dev``) errors keep the contract's shape, exactly as in production.

DEBUG makes Django answer its technical HTML pages instead of calling handler404 /
handler400 / handler500; the mobile apps are built against ``make dev``.
"""

from __future__ import annotations

import pytest

from tests.debug_errors import assert_bug_answers_500_envelope_and_is_logged, production_answer
from tests.public.conftest import assert_error


@pytest.mark.parametrize(
    "path",
    [
        "/api/no-such-route",
        "/api/orders/not-a-uuid",
        "/api/stores/42/products",
        "/nope",
    ],
)
def test_an_unknown_route_is_the_not_found_envelope_in_debug(debug, customer_client, path):
    response = customer_client.get(path)

    assert_error(response, 404, "not_found")
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"]["message"] == f"No resource at {path}."
    assert int(response["Content-Length"]) == len(response.content)
    assert production_answer(debug, customer_client, path) == (404, response.json())


def test_an_unknown_route_without_credentials_is_not_found_in_debug(debug, api_client, db):
    assert_error(api_client.get("/api/no-such-route"), 404, "not_found")


def test_a_request_for_another_host_is_a_malformed_request_in_debug(debug, customer_client):
    response = customer_client.get("/api/me", HTTP_HOST="evil.example")

    assert_error(response, 400, "malformed_request")
    assert production_answer(debug, customer_client, "/api/me", HTTP_HOST="evil.example") == (
        400,
        response.json(),
    )


def test_a_wrong_method_and_a_bad_body_keep_the_envelope_in_debug(debug, customer_client):
    assert_error(customer_client.delete("/api/orders"), 405, "method_not_allowed")
    assert_error(
        customer_client.post("/api/orders", b"{", content_type="application/json"),
        400,
        "malformed_request",
    )


@pytest.mark.urls("tests.public.debug_urls")
def test_a_bug_is_the_internal_error_envelope_in_debug_and_its_traceback_is_logged(
    debug, db, caplog
):
    assert_bug_answers_500_envelope_and_is_logged(caplog)


def test_the_docs_page_is_still_html_in_debug(debug, api_client, db):
    response = api_client.get("/api/docs/")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
