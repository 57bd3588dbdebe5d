"""Issue 11 on the admin server (admin settings): findings 9 (check --deploy), 10 (the
Django admin site's accounts) and 11b (an out-of-range stock delta is a form error or a
400, never a DataError 500)."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group
from django.core import checks
from django.test import Client
from django.urls import NoReverseMatch, reverse
from rest_framework.test import APIClient

from lokaly_admin.admin import people
from lokaly_core.accounts.models import Role, User
from lokaly_core.accounts.sessions import token_still_good
from lokaly_core.accounts.tokens import ADMIN, PUBLIC, issue_pair, validate_access
from lokaly_core.domain.inventory import MAX_DELTA
from lokaly_core.inventory.models import Stock, StockAdjustment
from tests.factories import StockFactory, UserFactory
from tests.public.conftest import assert_error

pytestmark = pytest.mark.django_db

# Each explained in docs/operations.md, "TLS and proxies".
EXPLAINED_DEPLOY_WARNINGS = {"security.W005", "security.W008", "security.W021"}


def _client(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _change(client: Client, user: User, **fields: Any) -> Any:
    data = {"email": user.email, "name": user.name, "role": user.role, "is_active": "on"}
    data.update(fields)
    if data.get("is_active") is False:
        del data["is_active"]
    return client.post(reverse("admin:core_user_change", args=[user.pk]), data)


# -- finding 9 --------------------------------------------------------------------------


def test_admin_check_deploy_is_clean_but_for_the_explained_warnings() -> None:
    found = {m.id for m in checks.run_checks(include_deployment_checks=True)}
    assert found <= EXPLAINED_DEPLOY_WARNINGS, found


# -- finding 10 -------------------------------------------------------------------------


def test_demoting_a_super_admin_on_the_site_clears_is_superuser(
    staff_super_admin: User,
) -> None:
    other = UserFactory.create(role=Role.SUPER_ADMIN, name="Other")
    other.is_superuser = True
    other.save()

    response = _change(_client(staff_super_admin), other, role="admin")

    assert response.status_code == 302, response.content.decode()[-2000:]
    other.refresh_from_db()
    assert (other.role, other.is_superuser) == (Role.ADMIN, False)

    response = _change(_client(staff_super_admin), other, role="super_admin")
    other.refresh_from_db()
    assert (other.role, other.is_superuser) == (Role.SUPER_ADMIN, True)


def test_the_group_section_is_gone() -> None:
    assert not admin.site.is_registered(Group)
    with pytest.raises(NoReverseMatch):
        reverse("admin:auth_group_changelist")


def test_an_admin_cannot_set_a_couriers_password(site_client: Client) -> None:
    courier = UserFactory.create(role=Role.COURIER)
    url = reverse("admin:auth_user_password_change", args=[courier.pk])
    before = courier.password

    assert site_client.get(url).status_code == 403
    posted = site_client.post(
        url,
        {
            "usable_password": "true",
            "password1": "attackers-long-passphrase-9",
            "password2": "attackers-long-passphrase-9",
        },
    )

    assert posted.status_code == 403
    courier.refresh_from_db()
    assert courier.password == before


def test_an_admin_cannot_change_a_couriers_email_only_deactivate(site_client: Client) -> None:
    courier = UserFactory.create(role=Role.COURIER, name="Before")
    email = courier.email
    page = site_client.get(reverse("admin:core_user_change", args=[courier.pk])).content.decode()
    assert 'name="email"' not in page
    assert "password/" not in page  # no link to the password page

    response = _change(
        site_client, courier, email="taken-over@example.test", name="After", is_active=False
    )

    assert response.status_code == 302, response.content.decode()[-2000:]
    courier.refresh_from_db()
    assert (courier.email, courier.name, courier.is_active) == (email, "Before", False)


def test_a_super_admin_still_edits_a_couriers_email(staff_super_admin: User) -> None:
    courier = UserFactory.create(role=Role.COURIER)
    response = _change(_client(staff_super_admin), courier, email="new@example.test")
    assert response.status_code == 302
    courier.refresh_from_db()
    assert courier.email == "new@example.test"


MAX_ON_HAND = 2**31 - 1  # the on_hand column, a PostgreSQL integer

# -- finding 11b ------------------------------------------------------------------------


def _adjust_url(stock: Stock) -> str:
    return reverse("admin:core_stock_adjust", args=[stock.pk])


@pytest.mark.parametrize("delta", [str(2**31), str(-(2**31) - 1), str(10**30), "9" * 40])
def test_site_stock_form_refuses_an_out_of_range_delta(site_client: Client, delta: str) -> None:
    stock = StockFactory.create(on_hand=10)

    response = site_client.post(_adjust_url(stock), {"delta": delta, "reason": "Count"})

    assert response.status_code == 200
    assert "Ensure this value is" in response.content.decode()
    stock.refresh_from_db()
    assert stock.on_hand == 10
    assert not StockAdjustment.objects.exists()


def test_site_stock_form_refuses_to_pass_the_columns_maximum(site_client: Client) -> None:
    stock = StockFactory.create(on_hand=MAX_ON_HAND - 5)

    response = site_client.post(_adjust_url(stock), {"delta": "6", "reason": "Delivery"})

    assert response.status_code == 200
    assert "largest quantity a store can hold" in response.content.decode()
    assert not StockAdjustment.objects.exists()
    stock.refresh_from_db()
    assert stock.on_hand == MAX_ON_HAND - 5


@pytest.mark.parametrize("delta", [MAX_DELTA + 1, 2**31, 10**30])
def test_api_stock_adjustment_refuses_an_out_of_range_delta(staff_admin: User, delta: int) -> None:
    stock = StockFactory.create(on_hand=10)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_pair(ADMIN, staff_admin)['access']}")

    response = client.post(
        f"/api/admin/stores/{stock.store_id}/stock/adjustments",
        {"product_id": str(stock.product_id), "delta": delta, "reason": "Count"},
        format="json",
    )

    assert_error(response, 400, "validation_error")


def test_api_stock_adjustment_refuses_to_pass_the_columns_maximum(staff_admin: User) -> None:
    stock = StockFactory.create(on_hand=MAX_ON_HAND - 5)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_pair(ADMIN, staff_admin)['access']}")

    response = client.post(
        f"/api/admin/stores/{stock.store_id}/stock/adjustments",
        {"product_id": str(stock.product_id), "delta": MAX_DELTA, "reason": "Delivery"},
        format="json",
    )

    assert_error(response, 409, "conflict")  # as tests/admin/test_stock.py has it
    stock.refresh_from_db()
    assert stock.on_hand == MAX_ON_HAND - 5


def test_a_password_set_on_the_site_ends_the_accounts_sessions(staff_super_admin: User) -> None:
    courier = UserFactory.create(role=Role.COURIER)
    access = issue_pair(PUBLIC, courier)["access"]
    payload = validate_access(PUBLIC, access)
    assert token_still_good(payload)

    response = _client(staff_super_admin).post(
        reverse("admin:auth_user_password_change", args=[courier.pk]),
        {
            "usable_password": "true",
            "password1": "a-new-long-passphrase-42",
            "password2": "a-new-long-passphrase-42",
        },
    )

    assert response.status_code == 302, response.content.decode()[-2000:]
    courier.refresh_from_db()
    assert courier.check_password("a-new-long-passphrase-42")
    # the token issued before the change no longer works, on HTTP as on sockets
    assert not token_still_good(payload)


def test_demoting_the_last_super_admin_in_a_race_is_refused_without_a_500(
    staff_super_admin: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = UserFactory.create(role=Role.SUPER_ADMIN, is_superuser=True)
    # The form read "another super admin exists" just before that one was deactivated:
    monkeypatch.setattr(people, "_other_active_super_admins", lambda user: True)
    User.objects.filter(pk=other.pk).update(is_active=False)

    client = _client(staff_super_admin)
    response = _change(client, staff_super_admin, role=Role.ADMIN)

    assert response.status_code == 302  # back to the page, with the service's refusal
    staff_super_admin.refresh_from_db()
    assert staff_super_admin.role == Role.SUPER_ADMIN
    page = client.get(response["Location"]).content.decode()
    assert "last active super admin" in page
