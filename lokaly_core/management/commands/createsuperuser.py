"""``createsuperuser``, made safe to run twice, and never a way into staff for an outsider.

``manage_admin.py createsuperuser --noinput`` with DJANGO_SUPERUSER_EMAIL and
DJANGO_SUPERUSER_PASSWORD (and optionally DJANGO_SUPERUSER_NAME) creates a
``super_admin`` staff account. Run again for an existing *staff* account (admin or
super_admin), it makes that account an active super_admin: with DJANGO_SUPERUSER_PASSWORD
set its password becomes that one, without it the account keeps its own (a staff member's,
set through the back office). An existing customer or courier account of that email is
refused: anyone can register a customer, so promoting one would hand staff rights to
whoever registered the email first (docs/operations.md, "First super admin").
"""

from __future__ import annotations

import os
from typing import Any

from django.contrib.auth.management.commands import createsuperuser
from django.core.management.base import CommandError

from lokaly_core.accounts.models import STAFF_ROLES, Role, User
from lokaly_core.accounts.revocation import announce_account_change


class Command(createsuperuser.Command):
    help = (
        "Create a super_admin staff account (or promote the existing staff account with that "
        "email); a customer or courier account of that email is refused."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        email = (options.get("email") or os.environ.get("DJANGO_SUPERUSER_EMAIL") or "").strip()
        existing = User.objects.filter(email__iexact=email).first() if email else None
        if existing is not None and existing.role not in STAFF_ROLES:
            raise CommandError(
                f"{existing.email} is a {existing.role} account; createsuperuser never turns a "
                "customer or courier into staff (anyone can register a customer account). "
                "Use another email address for the super admin, or, if this really is your "
                "account, have it deactivated and create the super admin under another address."
            )
        if options["interactive"] or existing is None:
            super().handle(*args, **options)
            return
        role_changed = existing.role != Role.SUPER_ADMIN or not existing.is_active
        existing.role = Role.SUPER_ADMIN
        existing.is_superuser = True
        existing.is_active = True
        password = os.environ.get("DJANGO_SUPERUSER_PASSWORD")
        if password:
            existing.set_password(password)
        existing.save()
        if role_changed or password:
            announce_account_change(
                existing.pk, reason="role_changed" if role_changed else "password_changed"
            )
        kept = "set from DJANGO_SUPERUSER_PASSWORD" if password else "unchanged"
        self.stdout.write(
            f"{existing.email} already existed; it is now an active super_admin (password {kept})."
        )
