"""The admin site's login form: the per-account failed-login lockout of both APIs.

``authenticate`` goes through ``LockoutModelBackend`` like the API's token views, so a
failure here counts against the same account as one on ``POST /api/admin/auth/token``;
while the account is locked the form answers the APIs' refusal as a form error.
"""

from __future__ import annotations

from typing import Any

from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.exceptions import ValidationError

from lokaly_core.accounts.lockout import REFUSAL, AccountLocked


class LockoutAdminAuthenticationForm(AdminAuthenticationForm):
    def clean(self) -> dict[str, Any]:
        try:
            return super().clean()
        except AccountLocked as exc:
            wait = getattr(exc, "wait", None)  # set by Throttled, missing from drf-stubs
            raise ValidationError(f"{REFUSAL} (about {wait} s)", code="rate_limited") from exc
