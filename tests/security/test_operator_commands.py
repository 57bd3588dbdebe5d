"""Findings 6 and 7 of issue 11: operator commands that cannot be turned against you.

``createsuperuser --noinput`` never makes a customer or courier staff (anyone can register
a customer under the planned super admin's email first); ``seed_demo`` refuses with DEBUG
off unless ``--force``, and then gives every demo account a random password.
"""

from __future__ import annotations

import re
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from lokaly_core.accounts.models import Role, User

pytestmark = pytest.mark.django_db

EMAIL = "boss@lokaly.example"
PLANNED_PASSWORD = "the-operators-own-password-42"


def _createsuperuser(monkeypatch: pytest.MonkeyPatch, password: str | None) -> str:
    monkeypatch.setenv("DJANGO_SUPERUSER_EMAIL", EMAIL)
    monkeypatch.setenv("DJANGO_SUPERUSER_NAME", "Boss")
    if password is None:
        monkeypatch.delenv("DJANGO_SUPERUSER_PASSWORD", raising=False)
    else:
        monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", password)
    out = StringIO()
    call_command("createsuperuser", "--noinput", stdout=out, stderr=StringIO())
    return out.getvalue()


@pytest.mark.parametrize("role", [Role.CUSTOMER, Role.COURIER])
@pytest.mark.parametrize("password", [None, PLANNED_PASSWORD])
def test_createsuperuser_refuses_to_promote_a_customer_or_courier(
    monkeypatch: pytest.MonkeyPatch, role: Role, password: str | None
) -> None:
    # The attacker registered the planned email first, with a password they know.
    squatter = User.objects.create_user(EMAIL, "attackers-password-1", name="Eve", role=role)

    with pytest.raises(CommandError, match=r"never turns a customer or courier into staff"):
        _createsuperuser(monkeypatch, password)

    squatter.refresh_from_db()
    assert (squatter.role, squatter.is_superuser) == (role, False)
    assert squatter.check_password("attackers-password-1")


def test_createsuperuser_creates_a_new_super_admin(monkeypatch: pytest.MonkeyPatch) -> None:
    _createsuperuser(monkeypatch, PLANNED_PASSWORD)
    user = User.objects.get(email=EMAIL)
    assert (user.role, user.is_superuser, user.is_active) == (Role.SUPER_ADMIN, True, True)
    assert user.check_password(PLANNED_PASSWORD)


def test_createsuperuser_promotes_an_existing_staff_account(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    staff = User.objects.create_user(EMAIL, "admins-own-password-1", name="A", role=Role.ADMIN)

    out = _createsuperuser(monkeypatch, None)  # no password given: the admin's own is kept
    staff.refresh_from_db()
    assert (staff.role, staff.is_superuser) == (Role.SUPER_ADMIN, True)
    assert staff.check_password("admins-own-password-1")
    assert "password unchanged" in out

    out = _createsuperuser(monkeypatch, PLANNED_PASSWORD)  # given: it replaces it
    staff.refresh_from_db()
    assert staff.check_password(PLANNED_PASSWORD)
    assert "set from DJANGO_SUPERUSER_PASSWORD" in out


def _seed_demo(*args: str) -> str:
    out = StringIO()
    call_command("seed_demo", *args, stdout=out)
    return out.getvalue()


def test_seed_demo_refuses_without_debug(settings: Any) -> None:
    settings.DEBUG = False
    with pytest.raises(CommandError, match=r"DEBUG is off.*--force"):
        _seed_demo()
    assert not User.objects.filter(email__endswith="@lokaly.test").exists()
    with pytest.raises(CommandError, match=r"documented demo password"):
        _seed_demo("--force", "--password", "lokaly-demo-pass")


def test_seed_demo_forced_without_debug_prints_random_passwords(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.DEBUG = False
    monkeypatch.setenv("DEMO_PASSWORD", "lokaly-demo-pass")  # the documented one: ignored
    printed = dict(re.findall(r"^  (\S+@lokaly\.test) / (\S+) / ", _seed_demo("--force"), re.M))

    assert "superadmin@lokaly.test" in printed
    assert len(set(printed.values())) == len(printed)  # one of its own per account
    for email, password in printed.items():
        user = User.objects.get(email=email)
        assert password != "lokaly-demo-pass"
        assert len(password) >= 16
        assert user.check_password(password)
        assert not user.check_password("lokaly-demo-pass")

    again = dict(re.findall(r"^  (\S+@lokaly\.test) / (\S+) / ", _seed_demo("--force"), re.M))
    assert again["superadmin@lokaly.test"] != printed["superadmin@lokaly.test"]  # reset


def test_seed_demo_in_debug_keeps_the_documented_password(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.DEBUG = True
    monkeypatch.delenv("DEMO_PASSWORD", raising=False)
    _seed_demo()
    assert User.objects.get(email="superadmin@lokaly.test").check_password("lokaly-demo-pass")
