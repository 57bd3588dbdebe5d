"""Admin auth: staff-only login, rotating refresh, failed-login lockout, realm separation."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.test import override_settings
from rest_framework.test import APIClient, APIRequestFactory
from rest_framework_simplejwt.exceptions import InvalidToken

from lokaly_core.accounts.models import Role, User
from lokaly_core.accounts.tokens import (
    ADMIN,
    PUBLIC,
    PublicJWTAuthentication,
    issue_pair,
    validate_access,
)
from tests.factories import PASSWORD, UserFactory
from tests.public.conftest import assert_error

TOKEN = "/api/admin/auth/token"
REFRESH = "/api/admin/auth/token/refresh"
SAME_SECRET = "one-secret-for-both-realms-by-mistake-0123456789abcdef"


def _login(client: APIClient, email: str, password: str = PASSWORD) -> Any:
    return client.post(TOKEN, {"email": email, "password": password}, format="json")


# -- login -----------------------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.ADMIN, Role.SUPER_ADMIN])
def test_staff_log_in_with_an_admin_realm_pair(api_client: APIClient, db: None, role: Role) -> None:
    user = UserFactory.create(role=role)

    response = _login(api_client, user.email.upper())

    assert response.status_code == 200, response.content
    pair = response.json()
    assert set(pair) == {"access", "refresh"}
    payload = validate_access(ADMIN, pair["access"])
    assert (payload["user_id"], payload["role"], payload["aud"]) == (
        str(user.id),
        role,
        "lokaly-admin",
    )
    me = APIClient()
    me.credentials(HTTP_AUTHORIZATION=f"Bearer {pair['access']}")
    assert me.get("/api/admin/orders").status_code == 200


@pytest.mark.parametrize("role", [Role.CUSTOMER, Role.COURIER])
def test_customers_and_couriers_cannot_log_in_here(
    api_client: APIClient, db: None, role: Role
) -> None:
    user = UserFactory.create(role=role)

    assert_error(_login(api_client, user.email), 401, "not_authenticated")


def test_wrong_password_unknown_email_and_inactive_staff_are_401(
    api_client: APIClient, staff_admin: User
) -> None:
    inactive = UserFactory.create(role=Role.ADMIN, is_active=False)

    assert_error(_login(api_client, staff_admin.email, "wrong"), 401, "not_authenticated")
    assert_error(_login(api_client, "nobody@example.test"), 401, "not_authenticated")
    assert_error(_login(api_client, inactive.email), 401, "not_authenticated")


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({}, {"email", "password"}),
        ({"email": "a@example.test"}, {"password"}),
        ({"email": "a\x00@example.test", "password": "x"}, {"email"}),
        ({"email": ["a"], "password": {"x": 1}}, {"email", "password"}),
    ],
)
def test_login_validates_its_body(
    api_client: APIClient, db: None, body: dict[str, Any], fields: set[str]
) -> None:
    details = assert_error(api_client.post(TOKEN, body, format="json"), 400, "validation_error")

    assert set(details) == fields


def test_login_with_malformed_json_is_400(api_client: APIClient, db: None) -> None:
    response = api_client.post(TOKEN, "{", content_type="application/json")

    assert_error(response, 400, "malformed_request")


# -- refresh ---------------------------------------------------------------------------------


def test_refresh_rotates_and_each_refresh_token_works_once(
    api_client: APIClient, staff_admin: User
) -> None:
    first = _login(api_client, staff_admin.email).json()

    second = api_client.post(REFRESH, {"refresh": first["refresh"]}, format="json")
    again = api_client.post(REFRESH, {"refresh": first["refresh"]}, format="json")

    assert second.status_code == 200, second.content
    pair = second.json()
    assert pair["refresh"] != first["refresh"]
    assert validate_access(ADMIN, pair["access"])["user_id"] == str(staff_admin.id)
    assert_error(again, 401, "token_invalid")
    # contract v1.1: the reuse revoked the whole session, its newest refresh token too
    third = api_client.post(REFRESH, {"refresh": pair["refresh"]}, format="json")
    assert_error(third, 401, "token_invalid")


def test_a_public_refresh_token_or_garbage_is_401(api_client: APIClient, customer: User) -> None:
    public = issue_pair(PUBLIC, customer)

    for raw in (public["refresh"], public["access"], "not-a-jwt"):
        response = api_client.post(REFRESH, {"refresh": raw}, format="json")
        assert_error(response, 401, "token_invalid")
    assert_error(api_client.post(REFRESH, {}, format="json"), 400, "validation_error")


def test_refresh_of_a_deactivated_or_demoted_account_is_401(
    api_client: APIClient, staff_admin: User
) -> None:
    pair = _login(api_client, staff_admin.email).json()
    User.objects.filter(pk=staff_admin.pk).update(role=Role.CUSTOMER)

    assert_error(
        api_client.post(REFRESH, {"refresh": pair["refresh"]}, format="json"), 401, "token_invalid"
    )


# -- failed-login lockout --------------------------------------------------------------------


def test_five_failures_lock_the_account_even_for_the_right_password(
    api_client: APIClient, staff_admin: User
) -> None:
    for _ in range(5):
        assert_error(_login(api_client, staff_admin.email, "wrong"), 401, "not_authenticated")

    locked = _login(api_client, staff_admin.email)

    assert_error(locked, 429, "rate_limited")
    assert 1 <= int(locked["Retry-After"]) <= 15 * 60
    # the lock is per account: another staff member still logs in
    other = UserFactory.create(role=Role.ADMIN)
    assert _login(api_client, other.email).status_code == 200
    # and the email's case does not get around it
    assert_error(_login(api_client, staff_admin.email.upper()), 429, "rate_limited")


def test_a_success_before_the_limit_resets_the_count(
    api_client: APIClient, staff_admin: User
) -> None:
    for _ in range(4):
        _login(api_client, staff_admin.email, "wrong")
    assert _login(api_client, staff_admin.email).status_code == 200

    for _ in range(4):
        assert_error(_login(api_client, staff_admin.email, "wrong"), 401, "not_authenticated")
    assert _login(api_client, staff_admin.email).status_code == 200


def test_unknown_emails_lock_like_real_ones(api_client: APIClient, db: None) -> None:
    for _ in range(5):
        _login(api_client, "ghost@example.test", "wrong")

    assert_error(_login(api_client, "ghost@example.test", "wrong"), 429, "rate_limited")


def test_the_lock_ends_when_the_window_passes(
    api_client: APIClient, staff_admin: User, redis_client: Any
) -> None:
    with override_settings(LOGIN_MAX_FAILURES=2, LOGIN_FAILURE_WINDOW_SECONDS=1):
        _login(api_client, staff_admin.email, "wrong")
        _login(api_client, staff_admin.email, "wrong")
        locked = _login(api_client, staff_admin.email)
        assert_error(locked, 429, "rate_limited")
        assert locked["Retry-After"] == "1"

        # when the window's keys expire (Redis drops them after their TTL)
        time.sleep(1.2)

        assert _login(api_client, staff_admin.email).status_code == 200


# -- realm separation ------------------------------------------------------------------------


def _public_authenticate(token: str) -> Any:
    request = APIRequestFactory().get("/api/me", HTTP_AUTHORIZATION=f"Bearer {token}")
    return PublicJWTAuthentication().authenticate(request)


@pytest.mark.parametrize("same_secret", [False, True])
def test_a_public_token_is_401_on_the_admin_api(
    api_client: APIClient, customer: User, courier: User, same_secret: bool
) -> None:
    overrides = {"PUBLIC_JWT_SECRET": SAME_SECRET, "ADMIN_JWT_SECRET": SAME_SECRET}
    with override_settings(**(overrides if same_secret else {})):
        for user in (customer, courier):
            api_client.credentials(
                HTTP_AUTHORIZATION=f"Bearer {issue_pair(PUBLIC, user)['access']}"
            )
            assert_error(api_client.get("/api/admin/orders"), 401, "token_invalid")
            with pytest.raises(InvalidToken):
                validate_access(ADMIN, issue_pair(PUBLIC, user)["access"])


@pytest.mark.parametrize("same_secret", [False, True])
def test_an_admin_token_is_401_on_the_public_api(staff_admin: User, same_secret: bool) -> None:
    overrides = {"PUBLIC_JWT_SECRET": SAME_SECRET, "ADMIN_JWT_SECRET": SAME_SECRET}
    with override_settings(**(overrides if same_secret else {})):
        token = issue_pair(ADMIN, staff_admin)["access"]

        with pytest.raises(InvalidToken):
            validate_access(PUBLIC, token)
        with pytest.raises(InvalidToken):
            _public_authenticate(token)


def test_tokens_are_verified_without_building_a_backend_each(
    customer: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A token backend is built once per realm and secret, not per token (building one
    builds pyjwt's whole algorithm table: ~5 % of a public process under load), and a
    changed secret still gets its own: tokens of the old secret stop validating."""
    from rest_framework_simplejwt import backends

    built = []
    original = backends.TokenBackend.__init__

    def counting(self: Any, *args: Any, **kwargs: Any) -> None:
        built.append(kwargs.get("signing_key"))
        original(self, *args, **kwargs)

    monkeypatch.setattr(backends.TokenBackend, "__init__", counting)
    old = [issue_pair(PUBLIC, customer)["access"] for _ in range(20)]
    for token in old:
        validate_access(PUBLIC, token)
    assert len(built) <= 1, f"{len(built)} backends built for 20 tokens"

    rotated = "a-rotated-public-secret-of-enough-length-0123456789"
    with override_settings(PUBLIC_JWT_SECRET=rotated):
        fresh = issue_pair(PUBLIC, customer)["access"]
        assert validate_access(PUBLIC, fresh)["user_id"] == str(customer.pk)
        with pytest.raises(InvalidToken):
            validate_access(PUBLIC, old[0])
    assert built.count(rotated) == 1
