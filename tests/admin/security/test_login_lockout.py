"""The failed-login lockout across every login path, on the real servers (contract v1.1,
"Sessions and logins"; issue 11 finding 1): 5 wrong passwords on ``/admin/login/`` lock the
account on the admin API (and the public API), and the reverse; the right password is
refused while locked. Admin settings: the admin site's session tables are in the test
database. The public API's own cases: tests/security/test_login_lockout.py.
"""

from __future__ import annotations

import html
import re

import httpx
import pytest

from lokaly_core.accounts.lockout import REFUSAL
from lokaly_core.accounts.models import Role
from tests.factories import PASSWORD, UserFactory
from tests.security.live_servers import LiveServers, live_servers  # noqa: F401 (fixture)

TOKEN, ADMIN_TOKEN = "/api/auth/token", "/api/admin/auth/token"


# -- every path shares one counter: the real servers -------------------------------------------


def _site_login(base: str, email: str, password: str) -> httpx.Response:
    """A login on the admin site as a browser does it: the form, its CSRF token, the post."""
    with httpx.Client(base_url=base) as browser:
        form = browser.get("/admin/login/")
        match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)
        assert match, form.text[:500]
        # The cookie is Secure when DEBUG is off; a browser behind TLS would send it back.
        csrf = form.cookies["csrftoken"]
        return browser.post(
            "/admin/login/?next=/admin/",
            headers={"Cookie": f"csrftoken={csrf}"},
            data={
                "csrfmiddlewaretoken": match.group(1),
                "username": email,
                "password": password,
                "next": "/admin/",
            },
        )


def _api_login(base: str, path: str, email: str, password: str) -> httpx.Response:
    return httpx.post(f"{base}{path}", json={"email": email, "password": password})


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_failures_on_the_admin_site_lock_the_account_on_both_apis(
    live_servers: LiveServers,  # noqa: F811
) -> None:
    staff = UserFactory.create(role=Role.ADMIN)
    assert _site_login(live_servers.admin, staff.email, PASSWORD).status_code == 302  # works

    for _ in range(5):
        wrong = _site_login(live_servers.admin, staff.email, "not-it")
        assert wrong.status_code == 200 and "errornote" in wrong.text

    # the right password is refused everywhere while locked
    api = _api_login(live_servers.admin, ADMIN_TOKEN, staff.email, PASSWORD)
    assert (api.status_code, api.json()["error"]["code"]) == (429, "rate_limited")
    assert int(api.headers["Retry-After"]) >= 1
    public = _api_login(live_servers.public, TOKEN, staff.email.upper(), PASSWORD)
    assert (public.status_code, public.json()["error"]["code"]) == (429, "rate_limited")
    site = _site_login(live_servers.admin, staff.email, PASSWORD)
    assert site.status_code == 200
    assert REFUSAL in html.unescape(site.text)


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_failures_on_the_admin_api_lock_the_admin_site(
    live_servers: LiveServers,  # noqa: F811
) -> None:
    staff = UserFactory.create(role=Role.SUPER_ADMIN)
    for _ in range(5):
        wrong = _api_login(live_servers.admin, ADMIN_TOKEN, staff.email, "not-it")
        assert wrong.status_code == 401

    site = _site_login(live_servers.admin, staff.email, PASSWORD)

    # refused with the APIs' words as a form error, and not signed in
    assert site.status_code == 200
    assert REFUSAL in html.unescape(site.text)
    assert "sessionid" not in site.headers.get("set-cookie", "")


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_public_failures_lock_the_account_on_the_admin_server(
    live_servers: LiveServers,  # noqa: F811
) -> None:
    customer = UserFactory.create()
    for _ in range(5):
        _api_login(live_servers.public, TOKEN, customer.email, "not-it")

    locked = _api_login(live_servers.public, TOKEN, customer.email, PASSWORD)
    admin_side = _api_login(live_servers.admin, ADMIN_TOKEN, customer.email, PASSWORD)

    assert (locked.status_code, locked.json()["error"]["code"]) == (429, "rate_limited")
    assert (admin_side.status_code, admin_side.json()["error"]["code"]) == (429, "rate_limited")
