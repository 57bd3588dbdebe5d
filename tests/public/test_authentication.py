"""``Authorization: Bearer <access>`` on the public API, seen through ``GET /api/me``."""

from __future__ import annotations

import jwt
import pytest
from django.conf import settings
from django.test import override_settings

from lokaly_core.accounts.models import Role, User
from lokaly_core.accounts.tokens import ADMIN, PUBLIC, issue_pair
from tests.factories import UserFactory
from tests.public.conftest import assert_error

ME = "/api/me"


def _bearer(token: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def _resigned(token: str, *, key: str | None = None, **claims: object) -> str:
    """The token's claims, changed by ``claims`` and signed with ``key``."""
    payload = jwt.decode(token, options={"verify_signature": False})
    payload.update(claims)
    return jwt.encode(payload, key or settings.PUBLIC_JWT_SECRET, algorithm="HS256")


@pytest.mark.parametrize("role", [Role.CUSTOMER, Role.COURIER])
def test_me_returns_the_caller(api_client, db, role):
    user = UserFactory.create(role=role, name="Ada Lovelace")

    response = api_client.get(ME, **_bearer(issue_pair(PUBLIC, user)["access"]))

    assert response.status_code == 200
    assert response.json() == {
        "id": str(user.id), "email": user.email, "name": "Ada Lovelace", "role": str(role),
    }


def test_me_without_a_token_is_not_authenticated(api_client, db):
    response = api_client.get(ME)

    assert_error(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_an_expired_access_token_is_invalid(api_client, customer):
    with override_settings(JWT_ACCESS_TTL_SECONDS=-60):  # past the 10 s leeway
        access = issue_pair(PUBLIC, customer)["access"]

    response = api_client.get(ME, **_bearer(access))

    assert_error(response, 401, "token_invalid")
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_a_token_with_a_bad_signature_is_invalid(api_client, customer):
    access = _resigned(
        issue_pair(PUBLIC, customer)["access"], key="another-secret-of-the-right-length-0123456789"
    )

    response = api_client.get(ME, **_bearer(access))

    assert_error(response, 401, "token_invalid")


def test_a_tampered_token_is_invalid(api_client, customer, other_customer):
    # given a customer's token whose user_id was swapped without re-signing
    access = issue_pair(PUBLIC, customer)["access"]
    header, _payload, signature = access.split(".")
    forged_payload = _resigned(access, user_id=str(other_customer.id)).split(".")[1]
    access = ".".join([header, forged_payload, signature])

    response = api_client.get(ME, **_bearer(access))

    assert_error(response, 401, "token_invalid")


def test_a_token_for_another_audience_is_invalid(api_client, customer):
    # signed with the public secret, but for the admin API's audience
    access = _resigned(issue_pair(PUBLIC, customer)["access"], aud="lokaly-admin")

    response = api_client.get(ME, **_bearer(access))

    assert_error(response, 401, "token_invalid")


def test_an_admin_realm_token_is_invalid_on_the_public_api(api_client, staff_user):
    access = issue_pair(ADMIN, staff_user)["access"]

    response = api_client.get(ME, **_bearer(access))

    assert_error(response, 401, "token_invalid")


def test_a_public_token_of_a_staff_account_is_invalid(api_client, staff_user):
    access = issue_pair(PUBLIC, staff_user)["access"]

    response = api_client.get(ME, **_bearer(access))

    assert_error(response, 401, "token_invalid")


def test_a_refresh_token_is_not_an_access_token(api_client, customer):
    refresh = issue_pair(PUBLIC, customer)["refresh"]

    response = api_client.get(ME, **_bearer(refresh))

    assert_error(response, 401, "token_invalid")


def test_the_token_of_a_deactivated_account_is_invalid(api_client, customer):
    access = issue_pair(PUBLIC, customer)["access"]
    User.objects.filter(pk=customer.pk).update(is_active=False)

    response = api_client.get(ME, **_bearer(access))

    assert_error(response, 401, "token_invalid")


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer    ", "Token abc"])
def test_a_malformed_authorization_header_is_invalid(api_client, db, header):
    response = api_client.get(ME, HTTP_AUTHORIZATION=header)

    assert_error(response, 401, "token_invalid")


def test_garbage_after_bearer_is_invalid(api_client, db):
    response = api_client.get(ME, **_bearer("not.a.jwt"))

    assert_error(response, 401, "token_invalid")
