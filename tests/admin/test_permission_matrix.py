"""The RBAC matrix: every admin endpoint of the contract x every kind of caller.

The table below is the contract's "Admin API" table, written out as (method, path,
action). The expected status of the staff roles comes from ``lokaly_admin.rbac.PERMISSIONS``
(the code), and separate tests pin PERMISSIONS to the contract and to docs/admin-api.md,
so the code, the contract and the docs cannot drift apart.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from rest_framework.test import APIClient

from lokaly_admin import rbac
from lokaly_core.accounts.models import Role, User
from lokaly_core.accounts.tokens import ADMIN, PUBLIC, issue_pair
from tests.factories import UserFactory
from tests.public.conftest import assert_error

ROOT = Path(__file__).resolve().parents[2]

# (method, path template, action): the contract's "Admin API" table, one row per method.
ENDPOINTS: list[tuple[str, str, str]] = [
    ("GET", "/api/admin/orders", "orders.read"),
    ("GET", "/api/admin/orders/{id}", "orders.read"),
    ("POST", "/api/admin/orders/{id}/cancel", "orders.cancel"),
    # v1.1, proof of delivery
    ("POST", "/api/admin/orders/{id}/delivery/complete", "orders.deliver"),
    ("POST", "/api/admin/orders/{id}/picking/start", "picking.write"),
    ("POST", "/api/admin/orders/{id}/picking/complete", "picking.write"),
    # v1.1, short picks and substitutions
    ("POST", "/api/admin/orders/{id}/picking/lines/{id}", "picking.write"),
    ("GET", "/api/admin/stores", "catalog.read"),
    ("POST", "/api/admin/stores", "catalog.write"),
    ("PATCH", "/api/admin/stores/{id}", "catalog.write"),
    ("GET", "/api/admin/products", "catalog.read"),
    ("POST", "/api/admin/products", "catalog.write"),
    ("PATCH", "/api/admin/products/{id}", "catalog.write"),
    ("GET", "/api/admin/stores/{id}/stock", "stock.read"),
    ("POST", "/api/admin/stores/{id}/stock/adjustments", "stock.adjust"),
    ("GET", "/api/admin/couriers", "couriers.read"),
    ("POST", "/api/admin/couriers", "couriers.write"),
    ("PATCH", "/api/admin/couriers/{id}", "couriers.write"),
    ("GET", "/api/admin/customers", "customers.read"),
    ("GET", "/api/admin/staff", "staff.read"),
    ("POST", "/api/admin/staff", "staff.write"),
    ("PATCH", "/api/admin/staff/{id}", "staff.write"),
    ("GET", "/api/admin/events/stats", "events.read"),
    ("GET", "/api/admin/events/dead-letters", "events.read"),
    ("POST", "/api/admin/events/dead-letters/{entry}/replay", "events.replay"),
    ("POST", "/api/admin/events/dead-letters/{entry}/discard", "events.replay"),
]
# Open to anyone (they issue the tokens): not behind RolePermission.
AUTH_ENDPOINTS = [
    ("POST", "/api/admin/auth/token"),
    ("POST", "/api/admin/auth/token/refresh"),
    ("POST", "/api/admin/auth/logout"),
]
# The contract's "no (403)" rows for admin: the staff rows and dead-letter replay/discard.
CONTRACT_SUPER_ADMIN_ONLY = {
    ("GET", "/api/admin/staff"),
    ("POST", "/api/admin/staff"),
    ("PATCH", "/api/admin/staff/{id}"),
    ("POST", "/api/admin/events/dead-letters/{entry}/replay"),
    ("POST", "/api/admin/events/dead-letters/{entry}/discard"),
}

CALLERS = ["anonymous", Role.CUSTOMER, Role.COURIER, Role.ADMIN, Role.SUPER_ADMIN]


def _concrete(template: str) -> str:
    return template.replace("{id}", str(uuid.uuid4())).replace("{entry}", "1700000000000-0")


def _client(caller: str) -> APIClient:
    client = APIClient()
    if caller != "anonymous":
        user: User = UserFactory.create(role=caller)
        realm = ADMIN if caller in {Role.ADMIN, Role.SUPER_ADMIN} else PUBLIC
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_pair(realm, user)['access']}")
    return client


def _call(client: APIClient, method: str, path: str) -> Any:
    return getattr(client, method.lower())(path, {}, format="json")


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize(("method", "template", "action"), ENDPOINTS)
def test_every_endpoint_answers_each_caller_as_the_matrix_says(
    db: None, caller: str, method: str, template: str, action: str
) -> None:
    response = _call(_client(caller), method, _concrete(template))

    assert response.status_code != 500, response.content
    if caller == "anonymous":
        assert_error(response, 401, "not_authenticated")
    elif caller in {Role.CUSTOMER, Role.COURIER}:
        assert_error(response, 401, "token_invalid")  # a public token is no admin token
    elif rbac.allowed(caller, action):
        # allowed: whatever the (empty) body earns (400, 404 for a made-up id, 200, ...)
        refused = {401, 403, 405} | ({404} if "{" not in template else set())
        assert response.status_code not in refused, response.content
    else:
        assert_error(response, 403, "permission_denied")


@pytest.mark.parametrize(("method", "template", "action"), ENDPOINTS)
def test_each_view_declares_the_action_of_the_contract_table(
    method: str, template: str, action: str
) -> None:
    match = resolve(_concrete(template))
    view = match.func.view_class  # type: ignore[attr-defined]

    assert hasattr(view, method.lower()), f"{template} has no {method} handler"
    assert rbac._action_of(view, method) == action


def test_permissions_equal_the_contract() -> None:
    actions = {action for _, _, action in ENDPOINTS}
    super_only = {(m, t) for m, t, a in ENDPOINTS if not rbac.allowed(Role.ADMIN, a)}

    assert set(rbac.PERMISSIONS) == {Role.ADMIN, Role.SUPER_ADMIN}
    assert rbac.PERMISSIONS[Role.SUPER_ADMIN] == actions
    assert super_only == CONTRACT_SUPER_ADMIN_ONLY
    assert rbac.PERMISSIONS[Role.ADMIN] < rbac.PERMISSIONS[Role.SUPER_ADMIN]
    for role in (Role.CUSTOMER, Role.COURIER):
        assert not any(rbac.allowed(role, a) for a in actions)


def _routes(resolver: URLResolver, prefix: str = "") -> list[tuple[str, Any]]:
    routes: list[tuple[str, Any]] = []
    for pattern in resolver.url_patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            routes += _routes(pattern, route)
        elif isinstance(pattern, URLPattern) and route.startswith("api/admin/"):
            routes.append((route, pattern.callback))
    return routes


def test_every_routed_admin_endpoint_is_in_the_table() -> None:
    """A new admin endpoint must be added to the contract table above (and so to the test)."""
    table = {(m, t) for m, t, _ in ENDPOINTS} | set(AUTH_ENDPOINTS)
    routed = set()
    for route, callback in _routes(get_resolver()):
        template = "/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route)
        template = re.sub(r"\{\w+_id\}", "{id}", template.replace("{entry_id}", "{entry}"))
        view = callback.view_class
        for method in ("GET", "POST", "PATCH", "PUT", "DELETE"):
            if hasattr(view, method.lower()):
                routed.add((method, template))

    assert routed == table


DOC_ROW = re.compile(r"^\| `([a-z_.]+)` \| (yes|no) \| (yes|no) \|", re.MULTILINE)


def test_the_docs_matrix_matches_the_code() -> None:
    doc = (ROOT / "docs" / "admin-api.md").read_text()

    documented = {
        action: {Role.ADMIN: admin == "yes", Role.SUPER_ADMIN: super_admin == "yes"}
        for action, admin, super_admin in DOC_ROW.findall(doc)
    }
    expected = {
        action: {role: rbac.allowed(role, action) for role in (Role.ADMIN, Role.SUPER_ADMIN)}
        for action in rbac.PERMISSIONS[Role.SUPER_ADMIN]
    }
    assert documented == expected
