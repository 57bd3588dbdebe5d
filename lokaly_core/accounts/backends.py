"""The one authentication backend: Django's ``ModelBackend`` behind the per-account
failed-login lockout (``lockout``), so every login path counts the same way: both APIs'
token views and the admin site's login form all call ``django.contrib.auth.authenticate``.

A locked account raises ``lockout.AccountLocked`` out of ``authenticate`` (not
``PermissionDenied``, which Django turns into a silent ``None``): the API answers 429,
the admin site's login form shows the refusal as a form error.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.backends import ModelBackend
from django.http import HttpRequest

from lokaly_core.accounts import lockout
from lokaly_core.accounts.models import User


class LockoutModelBackend(ModelBackend):
    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> User | None:
        if username is None:
            username = kwargs.get(User.USERNAME_FIELD)
        if username is None or password is None:
            return None
        email = str(username).strip().lower()
        lockout.ensure_not_locked(email)
        user = super().authenticate(request, username=email, password=password, **kwargs)
        if user is None:
            lockout.record_failure(email)
            return None
        lockout.reset(email)
        return user
