"""Contract v1.1 "Sessions and logins": a session id in every token, the whole session
revoked on refresh reuse, logout on both APIs, password change, role changes and a Redis
flush (issue 11, findings 4 and 5's IPv6 half).

In-process tests on the public API, then the acceptance on the real servers.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import httpx
import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from lokaly_core.accounts import session_store
from lokaly_core.accounts.models import LoginSession, Role
from lokaly_core.accounts.services import staff_update
from lokaly_core.accounts.sessions import token_still_good
from lokaly_core.accounts.tokens import _REFRESH, ADMIN, PUBLIC, issue_pair, validate_access
from lokaly_core.redis_client import get_redis
from tests.conftest import _delete_test_keys, wait_until
from tests.factories import PASSWORD, UserFactory
from tests.public.conftest import assert_error
from tests.security.live_servers import LiveServers, live_servers  # noqa: F401 (fixture)

TOKEN, REFRESH, LOGOUT = "/api/auth/token", "/api/auth/token/refresh", "/api/auth/logout"
PASSWORD_CHANGE = "/api/auth/password"
NEW_PASSWORD = "a-brand-new-passphrase-42"


def _login(client: APIClient, email: str, password: str = PASSWORD) -> dict[str, str]:
    response = client.post(TOKEN, {"email": email, "password": password})
    assert response.status_code == 200, response.content
    return response.json()


def _me(client: APIClient, access: str) -> Any:
    return client.get("/api/me", HTTP_AUTHORIZATION=f"Bearer {access}")


def _claims(raw: str) -> dict[str, Any]:
    segment = raw.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))))


# -- sessions in tokens ------------------------------------------------------------------


@pytest.mark.django_db
def test_a_login_starts_a_session_that_every_token_of_it_names(api_client: APIClient) -> None:
    user = UserFactory.create()

    pair = _login(api_client, user.email)
    refreshed = api_client.post(REFRESH, {"refresh": pair["refresh"]}).json()

    session = LoginSession.objects.get()
    assert (session.user_id, session.realm, session.revoked_at) == (user.pk, "public", None)
    sids = {_claims(t)["sid"] for t in (*pair.values(), *refreshed.values())}
    assert sids == {str(session.pk)}


@pytest.mark.django_db
def test_reusing_a_refresh_token_revokes_the_whole_session(api_client: APIClient) -> None:
    user = UserFactory.create()
    first = _login(api_client, user.email)
    other = _login(api_client, user.email)  # another device: another session
    second = api_client.post(REFRESH, {"refresh": first["refresh"]}).json()

    # when the first refresh token is used again (a thief, or the owner after a thief)
    reused = api_client.post(REFRESH, {"refresh": first["refresh"]})

    # then it is refused, and the newest pair of that session stops working too
    assert_error(reused, 401, "token_invalid")
    assert_error(_me(api_client, second["access"]), 401, "token_invalid")
    assert_error(api_client.post(REFRESH, {"refresh": second["refresh"]}), 401, "token_invalid")
    assert _me(api_client, other["access"]).status_code == 200
    session = LoginSession.objects.get(pk=_claims(first["refresh"])["sid"])
    assert session.revoked_reason == "refresh_reused"


@pytest.mark.django_db
def test_logout_ends_that_session_only(api_client: APIClient) -> None:
    user = UserFactory.create()
    phone, laptop = _login(api_client, user.email), _login(api_client, user.email)

    response = api_client.post(LOGOUT, {"refresh": phone["refresh"]})

    assert response.status_code == 204
    assert_error(_me(api_client, phone["access"]), 401, "token_invalid")
    assert_error(api_client.post(REFRESH, {"refresh": phone["refresh"]}), 401, "token_invalid")
    assert _me(api_client, laptop["access"]).status_code == 200
    # again: nothing left to end, still 204
    assert api_client.post(LOGOUT, {"refresh": phone["refresh"]}).status_code == 204


@pytest.mark.django_db
def test_logout_refuses_a_bad_or_foreign_refresh_token(api_client: APIClient) -> None:
    staff = UserFactory.create(role=Role.ADMIN)
    customer = UserFactory.create()
    admin_refresh = issue_pair(ADMIN, staff)["refresh"]
    access = issue_pair(PUBLIC, customer)["access"]

    assert_error(api_client.post(LOGOUT, {"refresh": "nonsense"}), 401, "token_invalid")
    assert_error(api_client.post(LOGOUT, {"refresh": admin_refresh}), 401, "token_invalid")
    assert_error(api_client.post(LOGOUT, {"refresh": access}), 401, "token_invalid")
    assert_error(api_client.post(LOGOUT, {}), 400, "validation_error")


@pytest.mark.django_db
def test_a_password_change_ends_every_other_session_and_starts_a_new_one(
    api_client: APIClient,
) -> None:
    user = UserFactory.create(role=Role.COURIER)
    current, elsewhere = _login(api_client, user.email), _login(api_client, user.email)

    response = api_client.post(
        PASSWORD_CHANGE,
        {"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        HTTP_AUTHORIZATION=f"Bearer {current['access']}",
    )

    assert response.status_code == 200, response.content
    fresh = response.json()
    assert set(fresh) == {"access", "refresh"}
    assert _me(api_client, fresh["access"]).status_code == 200
    for old in (current, elsewhere):
        assert_error(_me(api_client, old["access"]), 401, "token_invalid")
        assert_error(api_client.post(REFRESH, {"refresh": old["refresh"]}), 401, "token_invalid")
    assert _claims(fresh["access"])["sid"] not in {_claims(current["access"])["sid"]}
    assert api_client.post(TOKEN, {"email": user.email, "password": PASSWORD}).status_code == 401
    _login(api_client, user.email, NEW_PASSWORD)


@pytest.mark.django_db
def test_a_password_change_checks_the_current_password_and_the_rules(
    api_client: APIClient,
) -> None:
    user = UserFactory.create()
    pair = _login(api_client, user.email)
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {pair['access']}")

    wrong = api_client.post(
        PASSWORD_CHANGE, {"current_password": "not-it", "new_password": NEW_PASSWORD}
    )
    weak = api_client.post(
        PASSWORD_CHANGE, {"current_password": PASSWORD, "new_password": "12345678"}
    )
    api_client.credentials()
    anonymous = api_client.post(
        PASSWORD_CHANGE, {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    )

    assert "current_password" in assert_error(wrong, 400, "validation_error")
    assert "new_password" in assert_error(weak, 400, "validation_error")
    assert_error(anonymous, 401, "not_authenticated")
    assert _me(api_client, pair["access"]).status_code == 200  # nothing was revoked


@pytest.mark.django_db
def test_tokens_of_the_previous_build_keep_working_until_they_expire(
    api_client: APIClient,
) -> None:
    # given a pair as the build before sessions issued it: no sid claim
    user = UserFactory.create()
    refresh = _REFRESH["public"].for_user(user)
    refresh["role"] = user.role
    access = str(refresh.access_token)  # type: ignore[attr-defined]

    assert "sid" not in _claims(access)
    assert _me(api_client, access).status_code == 200
    # its refresh is exchanged into a session of the new kind
    rotated = api_client.post(REFRESH, {"refresh": str(refresh)}).json()
    assert _claims(rotated["access"])["sid"] == str(LoginSession.objects.get().pk)


# -- roles and deactivation ------------------------------------------------------------------


@pytest.mark.django_db
def test_a_role_change_ends_the_accounts_tokens_on_the_next_request(
    api_client: APIClient,
) -> None:
    user = UserFactory.create(role=Role.CUSTOMER)
    pair = _login(api_client, user.email)
    payload = validate_access(PUBLIC, pair["access"])
    assert token_still_good(payload)

    user.role = Role.COURIER  # both public roles: only the comparison with the claim catches it
    user.save(update_fields=["role"])

    assert_error(_me(api_client, pair["access"]), 401, "token_invalid")
    assert not token_still_good(payload)


@pytest.mark.django_db
def test_token_still_good_says_no_once_the_session_is_revoked(api_client: APIClient) -> None:
    user = UserFactory.create()
    pair = _login(api_client, user.email)
    payload = validate_access(PUBLIC, pair["access"])

    api_client.post(LOGOUT, {"refresh": pair["refresh"]})

    assert not token_still_good(payload)


@pytest.mark.django_db(transaction=True)
def test_role_changes_and_deactivations_are_announced_to_the_accounts_sockets(
    captured_announcements: list[dict[str, Any]],
) -> None:
    boss = UserFactory.create(role=Role.SUPER_ADMIN)
    staff = UserFactory.create(role=Role.ADMIN)

    staff_update(staff_id=staff.pk, role=Role.SUPER_ADMIN)
    staff_update(staff_id=staff.pk, is_active=False)

    reasons = [(a["user_id"], a["reason"]) for a in captured_announcements]
    assert reasons == [(str(staff.pk), "role_changed"), (str(staff.pk), "deactivated")]
    assert boss.pk  # the last super admin stays


@pytest.mark.django_db(transaction=True)
def test_every_revocation_is_announced_with_its_session(
    api_client: APIClient, captured_announcements: list[dict[str, Any]]
) -> None:
    user = UserFactory.create()
    out, reused, other = (_login(api_client, user.email) for _ in range(3))

    api_client.post(LOGOUT, {"refresh": out["refresh"]})
    api_client.post(REFRESH, {"refresh": reused["refresh"]})
    api_client.post(REFRESH, {"refresh": reused["refresh"]})
    api_client.post(
        PASSWORD_CHANGE,
        {"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        HTTP_AUTHORIZATION=f"Bearer {other['access']}",
    )

    assert [(a["reason"], a["session"]) for a in captured_announcements] == [
        ("logout", _claims(out["refresh"])["sid"]),
        ("session_revoked", _claims(reused["refresh"])["sid"]),
        ("password_changed", None),
    ]


@pytest.fixture
def captured_announcements(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """What ``announce_account_change`` sends, caught at the broadcaster (the sockets'
    side is tested with the consumers)."""
    sent: list[dict[str, Any]] = []

    class Recorder:
        def group_send(self, group: str, message: dict[str, Any]) -> None:
            sent.append({"user_id": group.removeprefix("account."), **message})

    monkeypatch.setattr("lokaly_core.accounts.revocation.get_broadcaster", lambda: Recorder())
    return sent


# -- one Redis round trip, and a Redis flush ---------------------------------------------


@pytest.mark.django_db
def test_the_session_check_shares_the_rate_limiters_round_trip(api_client: APIClient) -> None:
    user = UserFactory.create()
    pair = _login(api_client, user.email)
    _me(api_client, pair["access"])  # connections and scripts set up
    redis = session_store.client()
    calls: list[str] = []
    pool = redis.connection_pool
    original = pool.get_connection

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append("connection")
        return original(*args, **kwargs)

    pool.get_connection = counting  # one checkout per command, pipeline or script
    try:
        assert _me(api_client, pair["access"]).status_code == 200
    finally:
        pool.get_connection = original

    assert calls == ["connection"]


@pytest.mark.django_db
def test_after_a_redis_flush_a_revoked_session_stays_revoked(api_client: APIClient) -> None:
    user = UserFactory.create()
    gone, kept = _login(api_client, user.email), _login(api_client, user.email)
    api_client.post(LOGOUT, {"refresh": gone["refresh"]})
    assert_error(_me(api_client, gone["access"]), 401, "token_invalid")

    # when Redis forgets everything of ours (markers and the sentinel)
    _delete_test_keys(get_redis())
    assert not get_redis().exists(session_store.marker_key(_claims(gone["access"])["sid"]))

    # then PostgreSQL answers, and the markers are written again
    assert_error(_me(api_client, gone["access"]), 401, "token_invalid")
    assert _me(api_client, kept["access"]).status_code == 200
    assert get_redis().exists(session_store.marker_key(_claims(gone["access"])["sid"]))
    assert get_redis().exists(session_store.sentinel_key())


@pytest.mark.django_db
def test_with_redis_down_a_revoked_session_is_still_refused(
    api_client: APIClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = UserFactory.create()
    gone, kept = _login(api_client, user.email), _login(api_client, user.email)
    api_client.post(LOGOUT, {"refresh": gone["refresh"]})

    def down() -> Any:
        raise ConnectionError("Redis is down")

    with override_settings(RATELIMIT_ENABLE=False):
        monkeypatch.setattr(session_store, "client", down)
        assert_error(_me(api_client, gone["access"]), 401, "token_invalid")
        assert _me(api_client, kept["access"]).status_code == 200


# -- IPv6 per /64 ------------------------------------------------------------------------


@pytest.mark.django_db
def test_an_ipv6_client_is_counted_per_64(api_client: APIClient) -> None:
    with override_settings(PUBLIC_RATE_LIMIT="3/m"):
        for host in range(3):
            ok = api_client.get("/api/me", REMOTE_ADDR=f"2001:db8:1:2::{host + 1}")
            assert ok.status_code == 401  # counted, not limited (no token)

        same_64 = api_client.get("/api/me", REMOTE_ADDR="2001:db8:1:2:ffff::9")
        other_64 = api_client.get("/api/me", REMOTE_ADDR="2001:db8:1:3::1")

    assert_error(same_64, 429, "rate_limited")
    assert other_64.status_code == 401


# -- the real servers ----------------------------------------------------------------------


def _http_login(base: str, path: str, email: str) -> dict[str, str]:
    response = httpx.post(f"{base}{path}", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return response.json()


def _status(base: str, path: str, access: str) -> int:
    return httpx.get(f"{base}{path}", headers={"Authorization": f"Bearer {access}"}).status_code


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_live_reuse_logout_and_password_change_on_the_public_server(
    live_servers: LiveServers,  # noqa: F811
) -> None:
    base = live_servers.public
    user = UserFactory.create()

    # refresh reuse ends the session, newest tokens included
    first = _http_login(base, TOKEN, user.email)
    second = httpx.post(f"{base}{REFRESH}", json={"refresh": first["refresh"]}).json()
    reused = httpx.post(f"{base}{REFRESH}", json={"refresh": first["refresh"]})
    assert (reused.status_code, reused.json()["error"]["code"]) == (401, "token_invalid")
    assert _status(base, "/api/me", second["access"]) == 401

    # logout ends that session within a second; the other keeps working
    phone, laptop = _http_login(base, TOKEN, user.email), _http_login(base, TOKEN, user.email)
    assert httpx.post(f"{base}{LOGOUT}", json={"refresh": phone["refresh"]}).status_code == 204
    started = time.monotonic()
    wait_until(lambda: _status(base, "/api/me", phone["access"]) == 401, timeout=1)
    assert time.monotonic() - started < 1
    assert _status(base, "/api/me", laptop["access"]) == 200

    # a password change: a new session, every other one ended
    changed = httpx.post(
        f"{base}{PASSWORD_CHANGE}",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers={"Authorization": f"Bearer {laptop['access']}"},
    )
    assert changed.status_code == 200, changed.text
    assert _status(base, "/api/me", laptop["access"]) == 401
    assert _status(base, "/api/me", changed.json()["access"]) == 200


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_live_admin_logout_ends_that_session_only(
    live_servers: LiveServers,  # noqa: F811
) -> None:
    base = live_servers.admin
    staff = UserFactory.create(role=Role.ADMIN)
    one = _http_login(base, "/api/admin/auth/token", staff.email)
    two = _http_login(base, "/api/admin/auth/token", staff.email)
    assert _status(base, "/api/admin/orders", one["access"]) == 200

    logout = httpx.post(f"{base}/api/admin/auth/logout", json={"refresh": one["refresh"]})
    foreign = httpx.post(
        f"{base}/api/admin/auth/logout",
        json={"refresh": issue_pair(PUBLIC, UserFactory.create())["refresh"]},
    )

    assert logout.status_code == 204
    assert (foreign.status_code, foreign.json()["error"]["code"]) == (401, "token_invalid")
    wait_until(lambda: _status(base, "/api/admin/orders", one["access"]) == 401, timeout=1)
    assert _status(base, "/api/admin/orders", two["access"]) == 200
    reused = httpx.post(f"{base}/api/admin/auth/token/refresh", json={"refresh": one["refresh"]})
    assert reused.status_code == 401
