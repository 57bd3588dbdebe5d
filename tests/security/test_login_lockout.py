"""One failed-login counter per account on every login path (contract v1.1, "Sessions and
logins"; issue 11 findings 1 and 5): here the public API in process. The acceptance across
``POST /api/auth/token``, ``POST /api/admin/auth/token`` and the admin site's
``/admin/login/`` on the real servers is tests/admin/security/test_login_lockout.py (admin
settings: the admin site needs its session tables in the test database).
"""

from __future__ import annotations

from typing import Any

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from tests.factories import PASSWORD, UserFactory
from tests.public.conftest import assert_error

TOKEN = "/api/auth/token"


def _right(client: APIClient, email: str) -> Any:
    return client.post(TOKEN, {"email": email, "password": PASSWORD})


# -- the public API, in process --------------------------------------------------------------


@pytest.mark.django_db
def test_the_public_login_locks_an_account_after_five_failures(api_client: APIClient) -> None:
    user = UserFactory.create(email="ada@example.test")
    for n in range(5):
        # the email's case does not make another account
        email = "ADA@example.test" if n % 2 else user.email
        wrong = api_client.post(TOKEN, {"email": email, "password": "not-it"})
        assert_error(wrong, 401, "not_authenticated")

    locked = api_client.post(TOKEN, {"email": user.email, "password": PASSWORD})

    assert_error(locked, 429, "rate_limited")
    assert 1 <= int(locked["Retry-After"]) <= 900
    other = UserFactory.create()
    assert api_client.post(TOKEN, {"email": other.email, "password": PASSWORD}).status_code == 200


@pytest.mark.django_db
def test_unknown_emails_are_counted_alike(api_client: APIClient) -> None:
    for _ in range(5):
        api_client.post(TOKEN, {"email": "ghost@example.test", "password": "x"})

    assert_error(
        api_client.post(TOKEN, {"email": "ghost@example.test", "password": "x"}),
        429,
        "rate_limited",
    )


@pytest.mark.django_db
def test_a_success_clears_the_count(api_client: APIClient) -> None:
    user = UserFactory.create()
    with override_settings(LOGIN_MAX_FAILURES=3):
        for _ in range(2):
            api_client.post(TOKEN, {"email": user.email, "password": "not-it"})
        assert (
            api_client.post(TOKEN, {"email": user.email, "password": PASSWORD}).status_code == 200
        )
        for _ in range(2):
            api_client.post(TOKEN, {"email": user.email, "password": "not-it"})

        assert (
            api_client.post(TOKEN, {"email": user.email, "password": PASSWORD}).status_code == 200
        )
