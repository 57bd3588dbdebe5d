"""``POST /api/auth/register``, ``/api/auth/token`` and ``/api/auth/token/refresh``."""

from __future__ import annotations

import pytest

from lokaly_core.accounts.models import Role, UsedRefreshToken, User
from lokaly_core.accounts.tokens import ADMIN, PUBLIC, issue_pair
from tests.factories import PASSWORD, UserFactory
from tests.public.conftest import assert_error

REGISTER = "/api/auth/register"
TOKEN = "/api/auth/token"
REFRESH = "/api/auth/token/refresh"


def _me(api_client, access):
    return api_client.get("/api/me", HTTP_AUTHORIZATION=f"Bearer {access}")


# --- register ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_register_creates_a_customer_and_returns_it(api_client):
    response = api_client.post(
        REGISTER, {"email": "Ada@Example.test", "password": PASSWORD, "name": "Ada"}
    )

    assert response.status_code == 201
    user = User.objects.get()
    assert response.json() == {
        "id": str(user.id), "email": "ada@example.test", "name": "Ada", "role": "customer",
    }
    assert user.role == Role.CUSTOMER
    assert user.check_password(PASSWORD)


@pytest.mark.django_db
def test_register_ignores_a_role_in_the_body(api_client):
    response = api_client.post(
        REGISTER,
        {"email": "eve@example.test", "password": PASSWORD, "name": "Eve", "role": "super_admin"},
    )

    assert response.status_code == 201
    assert response.json()["role"] == "customer"
    assert User.objects.get().role == Role.CUSTOMER


@pytest.mark.django_db
def test_register_refuses_an_email_already_taken_whatever_its_case(api_client):
    UserFactory.create(email="ada@example.test")

    response = api_client.post(
        REGISTER, {"email": "ADA@example.test", "password": PASSWORD, "name": "Ada"}
    )

    details = assert_error(response, 400, "validation_error")
    assert details == {"email": ["An account with this email already exists."]}
    assert User.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("password", ["short1!", "12345678901", "password123"])
def test_register_refuses_a_weak_password(api_client, password):
    response = api_client.post(
        REGISTER, {"email": "ada@example.test", "password": password, "name": "Ada"}
    )

    details = assert_error(response, 400, "validation_error")
    assert list(details) == ["password"]
    assert details["password"]
    assert User.objects.count() == 0


@pytest.mark.django_db
def test_register_lists_every_missing_field(api_client):
    response = api_client.post(REGISTER, {})

    details = assert_error(response, 400, "validation_error")
    assert details == {
        "email": ["This field is required."],
        "password": ["This field is required."],
        "name": ["This field is required."],
    }
    assert User.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize("email", ["not-an-email", "", 42, None, ["a@b.test"]])
def test_register_refuses_an_invalid_email(api_client, email):
    response = api_client.post(REGISTER, {"email": email, "password": PASSWORD, "name": "Ada"})

    details = assert_error(response, 400, "validation_error")
    assert list(details) == ["email"]
    assert User.objects.count() == 0


# --- token ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_token_returns_a_pair_whose_access_token_works(api_client, customer):
    response = api_client.post(TOKEN, {"email": customer.email, "password": PASSWORD})

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access", "refresh"}
    me = _me(api_client, body["access"])
    assert me.status_code == 200
    assert me.json()["id"] == str(customer.id)


@pytest.mark.django_db
def test_token_accepts_the_email_in_any_case(api_client):
    UserFactory.create(email="ada@example.test")

    response = api_client.post(TOKEN, {"email": " ADA@Example.test ", "password": PASSWORD})

    assert response.status_code == 200


@pytest.mark.django_db
def test_token_refuses_a_wrong_password(api_client, customer):
    response = api_client.post(TOKEN, {"email": customer.email, "password": "wrong-password"})

    assert_error(response, 401, "not_authenticated")
    assert "access" not in response.json()


@pytest.mark.django_db
def test_token_refuses_an_unknown_email(api_client):
    response = api_client.post(TOKEN, {"email": "nobody@example.test", "password": PASSWORD})

    assert_error(response, 401, "not_authenticated")


@pytest.mark.django_db
@pytest.mark.parametrize("role", [Role.ADMIN, Role.SUPER_ADMIN])
def test_token_refuses_staff_accounts(api_client, role):
    staff = UserFactory.create(role=role)

    response = api_client.post(TOKEN, {"email": staff.email, "password": PASSWORD})

    assert_error(response, 401, "not_authenticated")


@pytest.mark.django_db
def test_token_refuses_a_deactivated_account(api_client):
    user = UserFactory.create(is_active=False)

    response = api_client.post(TOKEN, {"email": user.email, "password": PASSWORD})

    assert_error(response, 401, "not_authenticated")


@pytest.mark.django_db
def test_token_lets_a_courier_log_in(api_client, courier):
    response = api_client.post(TOKEN, {"email": courier.email, "password": PASSWORD})

    assert response.status_code == 200
    assert _me(api_client, response.json()["access"]).json()["role"] == "courier"


@pytest.mark.django_db
def test_token_requires_email_and_password(api_client):
    response = api_client.post(TOKEN, {})

    details = assert_error(response, 400, "validation_error")
    assert details == {
        "email": ["This field is required."], "password": ["This field is required."],
    }


# --- refresh ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_refresh_rotates_the_pair(api_client, customer):
    # given a pair
    first = issue_pair(PUBLIC, customer)

    # when the refresh token is exchanged
    response = api_client.post(REFRESH, {"refresh": first["refresh"]})

    # then a new pair comes back, and both its tokens work
    assert response.status_code == 200
    second = response.json()
    assert set(second) == {"access", "refresh"}
    assert second["refresh"] != first["refresh"]
    assert _me(api_client, second["access"]).status_code == 200
    third = api_client.post(REFRESH, {"refresh": second["refresh"]})
    assert third.status_code == 200
    assert UsedRefreshToken.objects.count() == 2


@pytest.mark.django_db
def test_refresh_token_works_only_once(api_client, customer):
    refresh = issue_pair(PUBLIC, customer)["refresh"]
    assert api_client.post(REFRESH, {"refresh": refresh}).status_code == 200

    response = api_client.post(REFRESH, {"refresh": refresh})

    assert_error(response, 401, "token_invalid")
    assert "access" not in response.json()


@pytest.mark.django_db
def test_refresh_refuses_an_access_token(api_client, customer):
    access = issue_pair(PUBLIC, customer)["access"]

    response = api_client.post(REFRESH, {"refresh": access})

    assert_error(response, 401, "token_invalid")
    assert UsedRefreshToken.objects.count() == 0


@pytest.mark.django_db
def test_refresh_refuses_an_admin_realm_refresh_token(api_client, staff_user):
    refresh = issue_pair(ADMIN, staff_user)["refresh"]

    response = api_client.post(REFRESH, {"refresh": refresh})

    assert_error(response, 401, "token_invalid")


@pytest.mark.django_db
def test_refresh_refuses_a_deactivated_account(api_client, customer):
    refresh = issue_pair(PUBLIC, customer)["refresh"]
    User.objects.filter(pk=customer.pk).update(is_active=False)

    response = api_client.post(REFRESH, {"refresh": refresh})

    assert_error(response, 401, "token_invalid")


@pytest.mark.django_db
@pytest.mark.parametrize("refresh", ["not-a-jwt", "a.b.c", ""])
def test_refresh_refuses_garbage(api_client, refresh):
    response = api_client.post(REFRESH, {"refresh": refresh})

    if refresh:
        assert_error(response, 401, "token_invalid")
    else:
        assert assert_error(response, 400, "validation_error") == {
            "refresh": ["This field may not be blank."]
        }
