"""``createsuperuser``, made safe to run twice: an existing account is promoted, not refused.

``manage_admin.py createsuperuser --noinput`` with DJANGO_SUPERUSER_EMAIL and
DJANGO_SUPERUSER_PASSWORD (and optionally DJANGO_SUPERUSER_NAME) creates a
``super_admin`` staff account. Run again, it sets the role and password of that account
and says so, instead of failing on the taken email.
"""

from __future__ import annotations

import os
from typing import Any

from django.contrib.auth.management.commands import createsuperuser

from lokaly_core.accounts.models import Role, User


class Command(createsuperuser.Command):
    help = "Create a super_admin staff account (or promote the existing one with that email)."

    def handle(self, *args: Any, **options: Any) -> None:
        email = (options.get("email") or os.environ.get("DJANGO_SUPERUSER_EMAIL") or "").strip()
        existing = User.objects.filter(email=email.lower()).first() if email else None
        if options["interactive"] or existing is None:
            super().handle(*args, **options)
            return
        existing.role = Role.SUPER_ADMIN
        existing.is_superuser = True
        existing.is_active = True
        password = os.environ.get("DJANGO_SUPERUSER_PASSWORD")
        if password:
            existing.set_password(password)
        existing.save()
        self.stdout.write(f"{existing.email} already existed; it is now an active super_admin.")
