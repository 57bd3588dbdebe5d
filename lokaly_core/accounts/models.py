"""One user model for everyone; the role decides which API (and which token) they use."""

from __future__ import annotations

import uuid
from typing import ClassVar

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.db import models
from django.db.models.functions import Upper
from django.utils import timezone


class Role(models.TextChoices):
    CUSTOMER = "customer", "Customer"
    COURIER = "courier", "Courier"
    ADMIN = "admin", "Admin"
    SUPER_ADMIN = "super_admin", "Super admin"


PUBLIC_ROLES = frozenset({Role.CUSTOMER, Role.COURIER})
STAFF_ROLES = frozenset({Role.ADMIN, Role.SUPER_ADMIN})


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def create_user(self, email: str, password: str | None = None, **extra: object) -> User:
        if not email:
            raise ValueError("An email address is required.")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **extra: object) -> User:
        extra.setdefault("name", email.split("@")[0])
        extra["role"] = Role.SUPER_ADMIN
        extra["is_superuser"] = True
        return self.create_user(email, password, **extra)


class User(AbstractBaseUser, PermissionsMixin):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    email = models.EmailField(unique=True)
    name = models.CharField(max_length=150)
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.CUSTOMER)
    is_active = models.BooleanField(default=True)
    date_joined = models.DateTimeField(default=timezone.now)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    # The name defaults from the email (createsuperuser --noinput).
    REQUIRED_FIELDS: ClassVar[list[str]] = []

    class Meta:
        indexes = [
            models.Index(fields=["role", "date_joined"], name="user_role_joined_idx"),
            # Case-insensitive email lookups (``email__iexact``: the admin order search).
            models.Index(Upper("email"), name="user_email_upper_idx"),
        ]

    def __str__(self) -> str:
        return self.email

    @property
    def is_staff(self) -> bool:
        """Staff roles may use the Django admin site (``/admin/``)."""
        return self.role in STAFF_ROLES


class UsedRefreshToken(models.Model):
    """Refresh tokens rotate: each may be exchanged once, after which its jti lands here."""

    jti = models.CharField(max_length=64, primary_key=True)
    expires_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return self.jti


class SessionRealm(models.TextChoices):
    PUBLIC = "public", "Public API"
    ADMIN = "admin", "Admin API"


class LoginSession(models.Model):
    """One login (contract v1.1, "Sessions and logins"): every token pair issued from it,
    through any number of refreshes, carries its id as the ``sid`` claim. Revoked sessions
    keep their row (``revoked_at``): PostgreSQL is what the Redis revocation markers are
    re-warmed from after a Redis flush (``session_store``)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Indexed by login_session_user_idx, which leads with it (tests/test_indexes.py).
    user = models.ForeignKey(
        User, on_delete=models.CASCADE, related_name="login_sessions", db_index=False
    )
    realm = models.CharField(max_length=10, choices=SessionRealm.choices)
    created_at = models.DateTimeField(default=timezone.now)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_reason = models.CharField(max_length=32, blank=True, default="")

    class Meta:
        indexes = [
            models.Index(fields=["user", "revoked_at"], name="login_session_user_idx"),
            # The re-warm after a Redis flush reads the sessions revoked lately.
            models.Index(
                fields=["revoked_at"],
                name="login_session_revoked_idx",
                condition=models.Q(revoked_at__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.realm} session {self.id}"
