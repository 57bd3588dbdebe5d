"""``/health`` and ``/health/ready`` (contract, "Conventions")."""

from __future__ import annotations

import pytest
from django.test import override_settings

from tests.public.conftest import assert_error


def test_health_answers_ok_without_touching_the_database(client):
    # no django_db mark: a query would fail the test
    response = client.get("/health")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_ready_reports_database_and_redis_ok(client):
    response = client.get("/health/ready")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "redis": "ok"}}


@pytest.mark.django_db
def test_ready_answers_503_with_the_failing_check_when_redis_is_unreachable(client):
    # given a Redis nobody listens on (port 1)
    with override_settings(REDIS_URL="redis://127.0.0.1:1/0"):
        # when
        response = client.get("/health/ready")

    # then the body names the failing check, and carries the error envelope too
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "error"
    assert body["checks"] == {"database": "ok", "redis": "error"}
    assert body["error"]["code"] == "unavailable"
    assert body["error"]["details"] == {"database": "ok", "redis": "error"}


@pytest.mark.parametrize("path", ["/health", "/health/ready"])
@pytest.mark.parametrize("method", ["post", "put", "delete", "head"])
def test_health_refuses_other_methods_with_the_error_shape(client, path, method):
    response = getattr(client, method)(path)

    assert response.status_code == 405
    assert response["Allow"] == "GET"
    if method != "head":
        assert_error(response, 405, "method_not_allowed")
