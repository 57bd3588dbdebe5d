"""The admin site's accounts section: customers, couriers and staff, by role."""

from __future__ import annotations

from collections.abc import Callable

from django.test import Client
from django.urls import reverse

from lokaly_core.accounts.models import Role, User
from lokaly_core.orders.models import Order
from tests.factories import StockFactory, UserFactory

ACCOUNTS = reverse("admin:core_user_changelist")


def _rows(html: str) -> str:
    """The result table's body, without the header that names the logged-in user."""
    return html[html.index("<tbody>") : html.index("</tbody>")]


def _client(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_admins_see_customers_and_couriers_but_not_staff(
    site_client: Client, staff_admin: User
) -> None:
    customer = UserFactory.create(role=Role.CUSTOMER)
    courier = UserFactory.create(role=Role.COURIER)
    boss = UserFactory.create(role=Role.SUPER_ADMIN)

    html = _rows(site_client.get(ACCOUNTS).content.decode())
    staff_page = site_client.get(reverse("admin:core_user_change", args=[boss.pk]))

    assert customer.email in html
    assert courier.email in html
    assert boss.email not in html
    assert staff_admin.email not in html
    assert staff_page.status_code == 302  # the admin site's "no such object" redirect


def test_super_admins_see_staff(staff_super_admin: User) -> None:
    other = UserFactory.create(role=Role.ADMIN)

    html = _client(staff_super_admin).get(ACCOUNTS, {"kind": "staff"}).content.decode()

    assert other.email in html
    assert staff_super_admin.email in html


def test_kind_filter_lists_couriers_only(site_client: Client) -> None:
    customer = UserFactory.create(role=Role.CUSTOMER)
    courier = UserFactory.create(role=Role.COURIER)

    html = site_client.get(ACCOUNTS, {"kind": "couriers"}).content.decode()

    assert courier.email in html
    assert customer.email not in html


def test_customer_order_counts_come_from_the_list_query(
    site_client: Client, make_order: Callable[..., Order]
) -> None:
    customer = UserFactory.create(role=Role.CUSTOMER)
    stock = StockFactory.create(on_hand=10)
    make_order(stock, customer=customer)
    make_order(stock, customer=customer)

    html = site_client.get(ACCOUNTS, {"kind": "customers"}).content.decode()

    assert '<td class="field-order_count">2</td>' in html


def test_admin_creates_a_courier_with_a_hashed_password(site_client: Client) -> None:
    response = site_client.post(
        reverse("admin:core_user_add"),
        {
            "email": "New.Courier@Example.test",
            "name": "New courier",
            "role": "courier",
            "usable_password": "true",
            "password1": "a-long-enough-passphrase-42",
            "password2": "a-long-enough-passphrase-42",
        },
    )

    assert response.status_code == 302
    courier = User.objects.get(email="new.courier@example.test")
    assert courier.role == Role.COURIER
    assert courier.check_password("a-long-enough-passphrase-42")
    assert not courier.password.startswith("a-long")


def test_admin_cannot_create_staff(site_client: Client) -> None:
    response = site_client.post(
        reverse("admin:core_user_add"),
        {
            "email": "sneaky@example.test",
            "name": "Sneaky",
            "role": "super_admin",
            "usable_password": "true",
            "password1": "a-long-enough-passphrase-42",
            "password2": "a-long-enough-passphrase-42",
        },
    )

    assert response.status_code == 200
    assert "Select a valid choice." in response.content.decode()
    assert not User.objects.filter(email="sneaky@example.test").exists()


def test_customers_are_read_only_for_admins(site_client: Client) -> None:
    customer = UserFactory.create(role=Role.CUSTOMER, name="Before")
    url = reverse("admin:core_user_change", args=[customer.pk])

    page = site_client.get(url).content.decode()
    posted = site_client.post(url, {"email": customer.email, "name": "After", "role": "customer"})

    assert 'name="name"' not in page
    assert posted.status_code == 403
    customer.refresh_from_db()
    assert customer.name == "Before"


def test_the_last_active_super_admin_cannot_be_demoted(staff_super_admin: User) -> None:
    url = reverse("admin:core_user_change", args=[staff_super_admin.pk])

    response = _client(staff_super_admin).post(
        url,
        {"email": staff_super_admin.email, "name": "Boss", "role": "admin", "is_active": "on"},
    )

    assert response.status_code == 200
    assert "last active super admin" in response.content.decode()
    staff_super_admin.refresh_from_db()
    assert staff_super_admin.role == Role.SUPER_ADMIN


def test_super_admin_sets_a_courier_password_on_the_password_page(
    staff_super_admin: User,
) -> None:
    # An admin may not (tests/admin/security/test_admin_site_security.py).
    courier = UserFactory.create(role=Role.COURIER)
    url = reverse("admin:auth_user_password_change", args=[courier.pk])

    response = _client(staff_super_admin).post(
        url,
        {
            "usable_password": "true",
            "password1": "another-long-passphrase-7",
            "password2": "another-long-passphrase-7",
        },
    )

    assert response.status_code == 302
    courier.refresh_from_db()
    assert courier.check_password("another-long-passphrase-7")
