"""Admin staff accounts: super_admin only; the last active super_admin stays."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest
from django.db import connection
from rest_framework.test import APIClient

from lokaly_core.accounts.models import Role, User
from lokaly_core.accounts.services import LastSuperAdmin, staff_update
from lokaly_core.accounts.tokens import ADMIN, issue_pair
from tests.factories import UserFactory
from tests.public.conftest import assert_error

NEW_STAFF = {
    "email": "Ops@Lokaly.test",
    "password": "a-long-enough-passphrase",
    "name": "Ops",
    "role": "admin",
}


def client_of(user: User) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_pair(ADMIN, user)['access']}")
    return client


@pytest.fixture
def root(db: None) -> User:
    return UserFactory.create(role=Role.SUPER_ADMIN, is_superuser=True)


@pytest.fixture
def su(root: User) -> APIClient:
    return client_of(root)


def test_super_admin_creates_staff(su: APIClient) -> None:
    response = su.post("/api/admin/staff", NEW_STAFF, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == {"id", "email", "name", "role", "is_active", "date_joined"}
    assert (body["email"], body["role"], body["is_active"]) == ("ops@lokaly.test", "admin", True)
    member = User.objects.get(pk=body["id"])
    assert member.check_password(NEW_STAFF["password"])
    assert member.is_superuser is False


def test_a_new_super_admin_is_a_superuser_of_the_admin_site(su: APIClient) -> None:
    response = su.post("/api/admin/staff", {**NEW_STAFF, "role": "super_admin"}, format="json")

    assert response.status_code == 201, response.content
    assert User.objects.get(pk=response.json()["id"]).is_superuser is True


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("role", "customer"),
        ("role", "courier"),
        ("role", "root"),
        ("password", "abc"),
        ("email", "nope"),
    ],
)
def test_create_staff_validates(su: APIClient, field: str, value: Any) -> None:
    response = su.post("/api/admin/staff", {**NEW_STAFF, field: value}, format="json")

    details = assert_error(response, 400, "validation_error")
    assert field in details
    assert not User.objects.filter(email="ops@lokaly.test").exists()


def test_create_staff_with_a_taken_email_is_409(su: APIClient) -> None:
    UserFactory.create(email="ops@lokaly.test", role=Role.COURIER)
    assert_error(su.post("/api/admin/staff", NEW_STAFF, format="json"), 409, "conflict")


def test_staff_list_shows_staff_only(su: APIClient, root: User) -> None:
    admin = UserFactory.create(role=Role.ADMIN)
    UserFactory.create(role=Role.CUSTOMER)
    UserFactory.create(role=Role.COURIER)

    rows = su.get("/api/admin/staff").json()["results"]

    assert {r["id"] for r in rows} == {str(root.id), str(admin.id)}


def test_admin_role_gets_403_on_every_staff_endpoint(db: None) -> None:
    admin = client_of(UserFactory.create(role=Role.ADMIN))
    other = UserFactory.create(role=Role.ADMIN)

    assert_error(admin.get("/api/admin/staff"), 403, "permission_denied")
    assert_error(admin.post("/api/admin/staff", NEW_STAFF, format="json"), 403, "permission_denied")
    response = admin.patch(f"/api/admin/staff/{other.id}", {"role": "super_admin"}, format="json")
    assert_error(response, 403, "permission_denied")
    other.refresh_from_db()
    assert other.role == Role.ADMIN


def test_promote_and_deactivate_staff(su: APIClient) -> None:
    member = UserFactory.create(role=Role.ADMIN)

    promoted = su.patch(f"/api/admin/staff/{member.id}", {"role": "super_admin"}, format="json")
    deactivated = su.patch(f"/api/admin/staff/{member.id}", {"is_active": False}, format="json")

    assert promoted.status_code == deactivated.status_code == 200
    assert promoted.json()["role"] == "super_admin"
    assert deactivated.json()["is_active"] is False
    member.refresh_from_db()
    assert (member.role, member.is_active, member.is_superuser) == (Role.SUPER_ADMIN, False, True)


def test_the_last_active_super_admin_cannot_be_demoted_or_deactivated(
    su: APIClient, root: User
) -> None:
    UserFactory.create(role=Role.SUPER_ADMIN, is_active=False)  # an inactive one does not count

    demote = su.patch(f"/api/admin/staff/{root.id}", {"role": "admin"}, format="json")
    deactivate = su.patch(f"/api/admin/staff/{root.id}", {"is_active": False}, format="json")

    assert_error(demote, 409, "conflict")
    assert_error(deactivate, 409, "conflict")
    root.refresh_from_db()
    assert (root.role, root.is_active) == (Role.SUPER_ADMIN, True)


def test_a_super_admin_can_step_down_when_another_remains(su: APIClient, root: User) -> None:
    UserFactory.create(role=Role.SUPER_ADMIN)

    response = su.patch(f"/api/admin/staff/{root.id}", {"role": "admin"}, format="json")

    assert response.status_code == 200, response.content
    root.refresh_from_db()
    assert root.role == Role.ADMIN
    # and the demoted account's token no longer works (tokens carry the role, v1.1)
    assert_error(su.get("/api/admin/staff"), 401, "token_invalid")


def test_patch_staff_needs_a_staff_account(su: APIClient) -> None:
    for target in (UserFactory.create(role=Role.CUSTOMER).id, uuid.uuid4()):
        response = su.patch(f"/api/admin/staff/{target}", {"is_active": False}, format="json")
        assert_error(response, 404, "not_found")
    assert_error(su.patch("/api/admin/staff/x", {}, format="json"), 404, "not_found")
    assert_error(
        su.patch(f"/api/admin/staff/{uuid.uuid4()}", "{", content_type="application/json"),
        400,
        "malformed_request",
    )


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_demotions_leave_one_super_admin() -> None:
    # given exactly two active super admins
    first, second = (UserFactory.create(role=Role.SUPER_ADMIN) for _ in range(2))
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def demote(member: User) -> None:
        try:
            barrier.wait()
            staff_update(staff_id=member.id, role=Role.ADMIN)
            outcomes.append("demoted")
        except LastSuperAdmin:
            outcomes.append("refused")
        finally:
            connection.close()

    # when each tries to demote the other at the same moment
    threads = [threading.Thread(target=demote, args=(m,)) for m in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    # then one wins and one active super admin remains
    assert sorted(outcomes) == ["demoted", "refused"]
    assert User.objects.filter(role=Role.SUPER_ADMIN, is_active=True).count() == 1
