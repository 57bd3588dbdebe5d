"""Who may do what on the admin API: one table, enforced by one permission class.

The matrix is data (``PERMISSIONS``) so the code, the docs (docs/admin-api.md) and the
test that walks every endpoint read the same source. Each admin view names the action
it performs (``action = "orders.read"``, or per method with ``actions = {"GET": ...}``).
"""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from lokaly_core.accounts.models import Role

ADMIN_ACTIONS = frozenset(
    {
        "orders.read",
        "orders.cancel",
        "orders.deliver",
        "picking.write",
        "catalog.read",
        "catalog.write",
        "stock.read",
        "stock.adjust",
        "couriers.read",
        "couriers.write",
        "customers.read",
        "events.read",
    }
)
SUPER_ADMIN_ONLY = frozenset({"staff.read", "staff.write", "events.replay"})

PERMISSIONS: dict[str, frozenset[str]] = {
    Role.ADMIN: ADMIN_ACTIONS,
    Role.SUPER_ADMIN: ADMIN_ACTIONS | SUPER_ADMIN_ONLY,
}


def allowed(role: str, action: str) -> bool:
    return action in PERMISSIONS.get(role, frozenset())


class RolePermission(BasePermission):
    """Allows the request when the user's role holds the view's action (see PERMISSIONS)."""

    message = "Your role does not allow this."

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return False
        action = _action_of(view, request.method or "GET")
        return action is not None and allowed(getattr(user, "role", ""), action)


def _action_of(view: Any, method: str) -> str | None:
    actions = getattr(view, "actions", None)
    if actions:
        if method in {"HEAD", "OPTIONS"}:
            method = "GET"
        return actions.get(method)
    return getattr(view, "action", None)
