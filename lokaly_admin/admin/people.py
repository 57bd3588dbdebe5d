"""Accounts on the admin site: customers, couriers and staff, one User model by role.

One section with a "kind" filter rather than three sections: three would need proxy
models, and proxies of a migrated model need a migration of their own. Each role reaches
only the kinds its RBAC actions allow (staff: super admins only), as on the admin API.
Passwords go through Django's usual admin forms (hashed, a separate change-password
page); the email address is the username.

As on the admin API, an ``admin`` may only activate or deactivate a courier: the email,
name, role and password of an existing account are a super admin's to change (the
password page refuses anyone else). Role and active-flag changes go through
``lokaly_core.accounts.services`` (``staff_update``, ``courier_set_active``), which keep
``is_superuser`` in step with the role and tell the account's sockets.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect

from lokaly_admin.admin.permissions import role_allows
from lokaly_core.accounts import revocation, services, session_store
from lokaly_core.accounts.models import STAFF_ROLES, Role, User

# Staff carry no Django groups or model permissions (permissions.py): no Group section.
if admin.site.is_registered(Group):
    admin.site.unregister(Group)

# Which RBAC action reads / writes the accounts of each role. Customers manage
# themselves on the public API, so no staff role writes them.
READ_ACTIONS = {
    Role.CUSTOMER: "customers.read",
    Role.COURIER: "couriers.read",
    Role.ADMIN: "staff.read",
    Role.SUPER_ADMIN: "staff.read",
}
WRITE_ACTIONS = {
    Role.COURIER: "couriers.write",
    Role.ADMIN: "staff.write",
    Role.SUPER_ADMIN: "staff.write",
}
KINDS = {
    "customers": (Role.CUSTOMER,),
    "couriers": (Role.COURIER,),
    "staff": (Role.ADMIN, Role.SUPER_ADMIN),
}


def readable_roles(request: HttpRequest) -> list[str]:
    return [role for role, action in READ_ACTIONS.items() if role_allows(request, action)]


def writable_roles(request: HttpRequest) -> list[str]:
    return [role for role, action in WRITE_ACTIONS.items() if role_allows(request, action)]


class KindFilter(admin.SimpleListFilter):
    title = "kind"
    parameter_name = "kind"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        readable = set(readable_roles(request))
        return [
            (kind, kind.capitalize()) for kind, roles in KINDS.items() if readable >= set(roles)
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[User]) -> QuerySet[User]:
        roles = KINDS.get(self.value() or "")
        return queryset.filter(role__in=roles) if roles else queryset


def _clean_email(form: forms.ModelForm, email: str) -> str:
    email = email.strip().lower()
    if User.objects.filter(email__iexact=email).exclude(pk=form.instance.pk).exists():
        raise forms.ValidationError("An account with this email address already exists.")
    return email


class _RoleChoicesMixin:
    """Offers only the roles the logged-in staff member may give (set by the admin)."""

    allowed_roles: list[str] = []

    def _limit_roles(self) -> None:
        field = self.fields.get("role")  # type: ignore[attr-defined]
        if field is not None:
            field.choices = [(r.value, r.label) for r in Role if r in self.allowed_roles]


class AccountCreationForm(_RoleChoicesMixin, AdminUserCreationForm):
    class Meta:
        model = User
        fields = ("email", "name", "role")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._limit_roles()

    def clean_email(self) -> str:
        return _clean_email(self, self.cleaned_data["email"])


class AccountChangeForm(_RoleChoicesMixin, UserChangeForm):
    class Meta:
        model = User
        fields = ("email", "name", "role", "is_active")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._limit_roles()

    def clean_email(self) -> str:
        return _clean_email(self, self.cleaned_data["email"])

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        was_super = self.initial.get("role") == Role.SUPER_ADMIN and self.initial.get("is_active")
        stays_super = cleaned.get("role") == Role.SUPER_ADMIN and cleaned.get("is_active")
        if was_super and not stays_super and not _other_active_super_admins(self.instance):
            raise forms.ValidationError(
                "This is the last active super admin: it cannot be demoted or deactivated."
            )
        return cleaned


def _other_active_super_admins(user: User) -> bool:
    return User.objects.filter(role=Role.SUPER_ADMIN, is_active=True).exclude(pk=user.pk).exists()


@admin.register(User)
class AccountAdmin(UserAdmin):
    form = AccountChangeForm
    add_form = AccountCreationForm
    list_display = ("email", "name", "role", "order_count", "is_active", "date_joined")
    list_filter = (KindFilter, "is_active", "date_joined")
    search_fields = ("email", "name")
    ordering = ("-date_joined",)
    filter_horizontal = ()
    readonly_fields = ("date_joined", "last_login")
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Account", {"fields": ("name", "role", "is_active")}),
        ("Dates", {"fields": ("date_joined", "last_login")}),
    )
    add_fieldsets = (
        (
            None,
            {
                "classes": ("wide",),
                "fields": ("email", "name", "role", "usable_password", "password1", "password2"),
            },
        ),
    )

    def _only_activates(self, request: HttpRequest, obj: Any | None) -> bool:
        """An existing account this staff member may only (de)activate: not super admin."""
        return obj is not None and not role_allows(request, "staff.write")

    def get_fieldsets(self, request: HttpRequest, obj: Any | None = None) -> Any:
        if self._only_activates(request, obj):
            # No password field, so no link to the password page either.
            return (
                (None, {"fields": ("email",)}),
                ("Account", {"fields": ("name", "role", "is_active")}),
                ("Dates", {"fields": ("date_joined", "last_login")}),
            )
        return super().get_fieldsets(request, obj)

    def get_readonly_fields(self, request: HttpRequest, obj: Any | None = None) -> Any:
        readonly = tuple(super().get_readonly_fields(request, obj))
        if self._only_activates(request, obj):
            return ("email", "name", "role", *readonly)
        return readonly

    def user_change_password(
        self, request: HttpRequest, id: str, form_url: str = ""
    ) -> HttpResponse:
        if not role_allows(request, "staff.write"):
            raise PermissionDenied  # the admin API does not let an admin set passwords either
        response = super().user_change_password(request, id, form_url)
        if request.method == "POST" and response.status_code == 302:  # the password was set
            # As POST /api/auth/password does: the old password's sessions end (and their
            # open sockets close), whoever holds them.
            session_store.sessions_revoke_all(id, reason="password_changed")
        return response

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except services.LastSuperAdmin as refused:
            # The form's own check passed, but another super admin was demoted meanwhile:
            # the service refused (its transaction rolled back); say so, change nothing.
            messages.error(request, refused.message)
            return HttpResponseRedirect(request.path)

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if not change:
            obj.is_superuser = obj.role == Role.SUPER_ADMIN
            super().save_model(request, obj, form, change)
            return
        before = User.objects.only("role", "is_active").get(pk=obj.pk)
        role, is_active = obj.role, obj.is_active
        with transaction.atomic():
            other = [f for f in form.changed_data if f not in {"role", "is_active", "password"}]
            if other:
                obj.save(update_fields=other)
            if before.role in STAFF_ROLES and role in STAFF_ROLES:
                if (role, is_active) != (before.role, before.is_active):
                    services.staff_update(staff_id=obj.pk, role=role, is_active=is_active)
            elif before.role == role == Role.COURIER:
                if is_active != before.is_active:
                    services.courier_set_active(courier_id=obj.pk, is_active=is_active)
            elif (role, is_active) != (before.role, before.is_active):
                # A courier made staff or the reverse (a super admin's choice on this site).
                obj.is_superuser = role == Role.SUPER_ADMIN
                obj.save(update_fields=["role", "is_active", "is_superuser"])
                revocation.announce_account_change(
                    obj.pk, reason="role_changed" if role != before.role else "deactivated"
                )
        obj.refresh_from_db()

    def get_queryset(self, request: HttpRequest) -> QuerySet[User]:
        # The order counts come as one aggregate of the list's query, not one per row.
        return (
            super()
            .get_queryset(request)
            .filter(role__in=readable_roles(request))
            .annotate(order_count=Count("orders"))
        )

    @admin.display(description="orders", ordering="order_count")
    def order_count(self, user: Any) -> int:
        return int(user.order_count)

    def get_form(
        self, request: HttpRequest, obj: Any | None = None, change: bool = False, **kwargs: Any
    ) -> type[forms.ModelForm[Any]]:
        form = super().get_form(request, obj, change=change, **kwargs)
        assert issubclass(form, _RoleChoicesMixin)  # a subclass of form or add_form
        form.allowed_roles = writable_roles(request)
        return form

    def has_module_permission(self, request: HttpRequest) -> bool:
        return bool(readable_roles(request))

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        roles = readable_roles(request)
        return bool(roles) and (obj is None or obj.role in roles)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return bool(writable_roles(request))

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        roles = writable_roles(request)
        return bool(roles) and (obj is None or obj.role in roles)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # accounts are deactivated, never deleted (orders reference them)
