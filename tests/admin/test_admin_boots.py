"""The admin server's own settings: health, and its API answering in the error shape."""

from __future__ import annotations


def test_health_answers_on_the_admin_server(client, db) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/health/ready").status_code == 200


def test_admin_api_without_token_is_401_in_the_error_shape(client, db) -> None:
    response = client.get("/api/admin/unknown-endpoint")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
