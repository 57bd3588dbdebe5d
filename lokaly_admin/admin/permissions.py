"""The admin site's permissions, read from the admin API's role table.

Staff accounts carry no Django model permissions: a role either holds an action of
``lokaly_admin.rbac.PERMISSIONS`` or it does not, on the API and on this site alike.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from lokaly_admin.rbac import allowed


def role_allows(request: HttpRequest, action: str | None) -> bool:
    user = request.user
    return action is not None and user.is_active and allowed(getattr(user, "role", ""), action)


class RoleActionsMixin:
    """``read_action`` opens the section read-only; ``write_action`` lets it add and edit.

    Nothing is deleted from the admin site: rows are referenced (PROTECT) or deactivated.
    """

    read_action: str
    write_action: str | None = None

    def has_module_permission(self, request: HttpRequest) -> bool:
        return role_allows(request, self.read_action)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return role_allows(request, self.read_action)

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return role_allows(request, self.write_action)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return role_allows(request, self.write_action)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadOnlyInline(RoleActionsMixin):
    """An inline that only shows rows (a ledger, a history): no add, change or delete."""

    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
