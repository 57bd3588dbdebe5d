from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from lokaly_core.accounts.models import Role, User


class _HasRole(BasePermission):
    roles: frozenset[str] = frozenset()
    message = "This endpoint is not for your role."

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and getattr(user, "role", None) in self.roles)


class IsCustomer(_HasRole):
    roles = frozenset({Role.CUSTOMER})


class IsCustomerOrCourier(_HasRole):
    roles = frozenset({Role.CUSTOMER, Role.COURIER})


class IsCourier(_HasRole):
    roles = frozenset({Role.COURIER})


def caller(request: Request) -> User:
    """The signed-in user of a view whose permission class (above) admits only them;
    ``request.user`` alone is typed ``User | AnonymousUser``."""
    user = request.user
    assert isinstance(user, User), "the view's permission class lets only users in"
    return user
