"""Order sockets (contract v1.1, "Order sockets" and the socket half of "Sessions and
logins"; issue 11 findings 2 and 3), against the real public server as processes.

- checked at connect: the account active with the token's role, its session not revoked;
- a socket lives no longer than its token, unless renewed in-band (``{"type": "auth"}``);
- closed within 5 s on deactivation, logout and role change;
- handshakes counted in the client IP's public rate limit (4429 over it);
- at most ``WS_MAX_SOCKETS_PER_USER`` sockets per account (4429 beyond), across processes;
- a message over 64 KiB closes with 1009; a malformed one is answered, the socket stays.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from lokaly_core.accounts.models import Role, User
from lokaly_core.accounts.revocation import announce_account_change
from lokaly_core.accounts.tokens import ADMIN, PUBLIC, issue_pair, validate_access
from lokaly_core.redis_client import get_redis
from lokaly_public.ws_guard import scope_client_ip
from tests.conftest import client_for, order_body
from tests.factories import (
    PASSWORD,
    StockFactory,
    UserFactory,
    courier_on_shift,
    dispatch_confirmed,
)
from tests.live import (
    delete_namespace_keys,
    free_port,
    live_environment,
    session_namespace,
    spawn,
    stop,
    wait_ready,
)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

MAX_SOCKETS = 3
RATE_LIMIT = 12
CLOSE_WITHIN_SECONDS = 5  # the contract's promise for account changes


@dataclass
class Servers:
    http: str
    ws: str
    limited_http: str  # a public server with a rate limit of RATE_LIMIT/m
    limited_ws: str
    admin: str
    namespace: str


@pytest.fixture(scope="module")
def servers(django_db_setup: None) -> Iterator[Servers]:
    namespace = session_namespace("lokaly-security-ws")
    delete_namespace_keys(namespace)
    base = live_environment(namespace)
    public_env = {
        **base,
        "DJANGO_SETTINGS_MODULE": "lokaly_public.settings.test",
        "WS_MAX_SOCKETS_PER_USER": str(MAX_SOCKETS),
    }
    limited_namespace = f"{namespace}-limited"
    delete_namespace_keys(limited_namespace)
    limited_env = {
        **live_environment(limited_namespace),
        "DJANGO_SETTINGS_MODULE": "lokaly_public.settings.test",
        "PUBLIC_RATE_LIMIT": f"{RATE_LIMIT}/m",
    }
    admin_env = {**base, "DJANGO_SETTINGS_MODULE": "lokaly_admin.settings.test"}
    ports = {"public": free_port(), "limited": free_port(), "admin": free_port()}
    logs: dict[str, Path] = {}
    serve = ["serve", "--no-migrate", "--port"]
    processes: dict[str, subprocess.Popen[bytes]] = {
        "ws-public": spawn(
            "ws-public",
            ["manage_public.py", *serve, str(ports["public"]), "--workers", "2"],
            public_env,
            logs,
        ),
        "ws-limited": spawn(
            "ws-limited",
            ["manage_public.py", *serve, str(ports["limited"]), "--workers", "1"],
            limited_env,
            logs,
        ),
        "ws-admin": spawn(
            "ws-admin",
            ["manage_admin.py", *serve, str(ports["admin"]), "--workers", "1"],
            admin_env,
            logs,
        ),
    }
    try:
        for port in ports.values():
            wait_ready(f"http://127.0.0.1:{port}", processes, logs)
        yield Servers(
            http=f"http://127.0.0.1:{ports['public']}",
            ws=f"ws://127.0.0.1:{ports['public']}",
            limited_http=f"http://127.0.0.1:{ports['limited']}",
            limited_ws=f"ws://127.0.0.1:{ports['limited']}",
            admin=f"http://127.0.0.1:{ports['admin']}",
            namespace=namespace,
        )
    finally:
        for proc in processes.values():
            stop(proc)
        delete_namespace_keys(namespace)
        delete_namespace_keys(limited_namespace)


# -- helpers ----------------------------------------------------------------------------------


def _order(customer: User | None = None) -> tuple[str, User]:
    stock = StockFactory.create(on_hand=5)
    customer = customer or UserFactory.create()
    response = client_for(customer).post(
        "/api/orders", order_body(stock.store_id, (stock.product_id, 1)), format="json"
    )
    assert response.status_code == 201, response.content
    return response.json()["id"], customer


def _token(user: User, *, ttl: float | None = None) -> str:
    """An access token of a new session of ``user``; with ``ttl``, the same claims expiring
    ``ttl`` seconds from now (signed as the server signs them)."""
    access = issue_pair(PUBLIC, user)["access"]
    if ttl is None:
        return access
    claims = validate_access(PUBLIC, access)
    claims["exp"] = int(time.time() + ttl)
    return str(PUBLIC.backend().encode(claims))


def _open(base: str, order_id: str, token: str) -> ClientConnection:
    return connect(f"{base}/ws/orders/{order_id}/?token={token}", open_timeout=10)


def _watch(base: str, order_id: str, token: str) -> ClientConnection:
    """An open socket that got its snapshot."""
    ws = _open(base, order_id, token)
    first = json.loads(ws.recv(timeout=10))
    assert first["type"] == "order.snapshot", first
    return ws


def _close_code(ws: ClientConnection, timeout: float) -> int | None:
    """Read until the server closes the socket; its close code. Fails the test if the
    socket is still open after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            pytest.fail(f"the socket is still open after {timeout} s")
        try:
            ws.recv(timeout=left)
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else None
        except TimeoutError:
            continue


def _refused_with(base: str, order_id: str, token: str) -> int | None:
    """The close code of a socket the server accepts and closes at once (None when it
    sends a snapshot instead)."""
    with _open(base, order_id, token) as ws:
        try:
            message = json.loads(ws.recv(timeout=10))
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else None
        assert message["type"] == "order.snapshot", message
        return None


def _send(ws: ClientConnection, message: dict[str, Any]) -> dict[str, Any]:
    ws.send(json.dumps(message))
    answer: dict[str, Any] = json.loads(ws.recv(timeout=10))
    return answer


def _still_open(ws: ClientConnection) -> None:
    assert _send(ws, {"type": "ping"}) == {"type": "pong"}


# -- checked at connect -----------------------------------------------------------------------


def test_a_deactivated_accounts_token_opens_no_socket(servers: Servers) -> None:
    # given a customer's valid token, and then the account deactivated
    order_id, customer = _order()
    token = _token(customer)
    User.objects.filter(pk=customer.pk).update(is_active=False)

    # when the token opens the order's socket, then it is closed with 4401
    assert _refused_with(servers.ws, order_id, token) == 4401


def test_a_logged_out_sessions_token_opens_no_socket(servers: Servers) -> None:
    # given a customer's session, logged out
    order_id, customer = _order()
    pair = issue_pair(PUBLIC, customer)
    out = httpx.post(
        f"{servers.http}/api/auth/logout",
        json={"refresh": pair["refresh"]},
        headers={"Authorization": f"Bearer {pair['access']}"},
    )
    assert out.status_code == 204, out.text

    # when its access token opens the socket, then it is closed with 4401
    assert _refused_with(servers.ws, order_id, pair["access"]) == 4401


# -- a socket lives no longer than its token ---------------------------------------------------


def test_the_socket_closes_at_its_tokens_expiry(servers: Servers) -> None:
    # given a socket on a token expiring in 3 s
    order_id, customer = _order()
    token = _token(customer, ttl=3)
    exp = validate_access(PUBLIC, token)["exp"]
    ws = _watch(servers.ws, order_id, token)

    # then the server closes it with 4401, not before the expiry
    assert _close_code(ws, timeout=30) == 4401
    assert time.time() >= exp - 1


def test_a_newer_token_keeps_the_socket_open(servers: Servers) -> None:
    # given a socket on a token expiring in 3 s
    order_id, customer = _order()
    old_exp = validate_access(PUBLIC, (token := _token(customer, ttl=3)))["exp"]
    ws = _watch(servers.ws, order_id, token)

    # when the client sends a newer access token of the same account
    newer = _token(customer)
    answer = _send(ws, {"type": "auth", "token": newer})

    # then the server says until when the socket lives
    new_exp = validate_access(PUBLIC, newer)["exp"]
    assert answer["type"] == "auth.ok", answer
    assert datetime.fromisoformat(answer["expires_at"]).timestamp() == new_exp
    assert answer["expires_at"].endswith("Z")
    # and the socket is still open after the old token expired
    while time.time() < old_exp + 2:
        _still_open(ws)
        time.sleep(0.25)
    _still_open(ws)
    ws.close()


@pytest.mark.parametrize("kind", ["other_account", "admin_realm", "garbage", "not_a_string"])
def test_a_foreign_or_bad_token_is_refused_and_the_old_expiry_holds(
    servers: Servers, kind: str
) -> None:
    # given a socket on a token expiring in 4 s
    order_id, customer = _order()
    ws = _watch(servers.ws, order_id, _token(customer, ttl=4))
    other: Any = {
        "other_account": lambda: _token(UserFactory.create()),
        "admin_realm": lambda: issue_pair(ADMIN, UserFactory.create(role=Role.ADMIN))["access"],
        "garbage": lambda: "not.a.jwt",
        "not_a_string": lambda: 42,
    }[kind]()

    # when the client sends that token
    answer = _send(ws, {"type": "auth", "token": other})

    # then it is refused, the socket stays for now, and closes at the old expiry
    assert answer["type"] == "error", answer
    assert answer["code"] == "token_invalid"
    _still_open(ws)
    assert _close_code(ws, timeout=30) == 4401


# -- closed within 5 s when the account changes ------------------------------------------------


def _admin_token(servers: Servers) -> str:
    staff = UserFactory.create(role=Role.ADMIN)
    login = httpx.post(
        f"{servers.admin}/api/admin/auth/token", json={"email": staff.email, "password": PASSWORD}
    )
    assert login.status_code == 200, login.text
    return str(login.json()["access"])


def test_deactivating_a_courier_closes_their_socket(servers: Servers) -> None:
    # given a courier watching the order they deliver
    courier = courier_on_shift()
    order_id, _ = _order()
    dispatch_confirmed(order_id)
    ws = _watch(servers.ws, order_id, _token(courier))

    # when an admin deactivates the courier through the admin API
    answer = httpx.patch(
        f"{servers.admin}/api/admin/couriers/{courier.id}",
        json={"is_active": False},
        headers={"Authorization": f"Bearer {_admin_token(servers)}"},
    )
    assert answer.status_code == 200, answer.text

    # then their socket is closed with 4401 within 5 s
    assert _close_code(ws, timeout=CLOSE_WITHIN_SECONDS) == 4401


def test_logging_out_closes_that_sessions_sockets_only(servers: Servers) -> None:
    # given a customer with two sessions, a socket on each
    order_id, customer = _order()
    pair = issue_pair(PUBLIC, customer)
    ended = _watch(servers.ws, order_id, pair["access"])
    kept = _watch(servers.ws, order_id, _token(customer))

    # when the first session logs out
    out = httpx.post(
        f"{servers.http}/api/auth/logout",
        json={"refresh": pair["refresh"]},
        headers={"Authorization": f"Bearer {pair['access']}"},
    )
    assert out.status_code == 204, out.text

    # then its socket is closed with 4401 within 5 s; the other session's stays
    assert _close_code(ended, timeout=CLOSE_WITHIN_SECONDS) == 4401
    _still_open(kept)
    kept.close()


def test_a_role_change_closes_the_accounts_sockets(servers: Servers) -> None:
    # given a customer watching their order
    order_id, customer = _order()
    ws = _watch(servers.ws, order_id, _token(customer))

    # when the account's role changes (as the admin site does it, then announces it)
    User.objects.filter(pk=customer.pk).update(role=Role.COURIER)
    announce_account_change(customer.pk, reason="role_changed")

    # then the socket is closed with 4401 within 5 s
    assert _close_code(ws, timeout=CLOSE_WITHIN_SECONDS) == 4401


def test_an_unrelated_change_leaves_the_socket_open(servers: Servers) -> None:
    # given a customer watching their order
    order_id, customer = _order()
    ws = _watch(servers.ws, order_id, _token(customer))

    # when the account is announced as changed but its token is still good
    announce_account_change(customer.pk, reason="session_revoked", session_id=None)

    # then the socket stays (it looked again and found the token good)
    _still_open(ws)
    ws.close()


# -- handshakes rate-limited per IP ------------------------------------------------------------


def test_handshakes_count_in_the_ip_rate_limit(servers: Servers) -> None:
    # given an order and a server allowing RATE_LIMIT requests a minute per IP
    order_id, customer = _order()
    token = _token(customer)

    # when this client opens sockets one after another
    codes = [_refused_with(servers.limited_ws, order_id, token) for _ in range(2 * RATE_LIMIT + 2)]

    # then the socket over the limit is accepted and closed at once with 4429 (a window
    # may turn over during the run: at most RATE_LIMIT sockets in each of two windows)
    assert 4429 in codes, codes
    assert set(codes) <= {None, 4429}, codes
    # and HTTP requests from this IP count in the same window
    assert httpx.get(f"{servers.limited_http}/api/me").status_code in (401, 429)
    for _ in range(RATE_LIMIT + 1):
        if httpx.get(f"{servers.limited_http}/api/me").status_code == 429:
            break
    assert _refused_with(servers.limited_ws, order_id, token) == 4429
    # and a claimed address from an untrusted peer does not escape the limit
    url = f"{servers.limited_ws}/ws/orders/{order_id}/?token={token}"
    ws = connect(url, open_timeout=10, additional_headers={"X-Forwarded-For": "203.0.113.7"})
    assert _close_code(ws, timeout=10) == 4429


@pytest.mark.parametrize(
    ("peer", "forwarded", "trusted", "expected"),
    [
        ("198.51.100.1", "203.0.113.7", [], "198.51.100.1"),
        ("198.51.100.1", "203.0.113.7", ["10.0.0.1"], "198.51.100.1"),
        ("10.0.0.1", "203.0.113.7", ["10.0.0.1"], "203.0.113.7"),
        ("10.0.0.1", "203.0.113.7, 10.0.0.2", ["10.0.0.1", "10.0.0.2"], "203.0.113.7"),
        ("10.0.0.1", "", ["10.0.0.1"], "10.0.0.1"),
    ],
)
def test_a_handshakes_ip_is_read_as_http_reads_it(
    settings: Any, peer: str, forwarded: str, trusted: list[str], expected: str
) -> None:
    settings.TRUSTED_PROXIES = trusted
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
    assert scope_client_ip({"client": (peer, 50000), "headers": headers}) == expected


# -- sockets per account -----------------------------------------------------------------------


def test_an_account_holds_at_most_max_sockets(servers: Servers) -> None:
    # given a customer with MAX_SOCKETS sockets open (over both server processes)
    order_id, customer = _order()
    token = _token(customer)
    opened = [_watch(servers.ws, order_id, token) for _ in range(MAX_SOCKETS)]

    # when they open one more, then it is accepted and closed with 4429
    assert _refused_with(servers.ws, order_id, token) == 4429
    # another account is not affected
    other_order, other = _order()
    _watch(servers.ws, other_order, _token(other)).close()

    # when one socket closes, its slot is free again
    opened.pop().close()
    deadline = time.monotonic() + 10
    while (code := _refused_with(servers.ws, order_id, token)) == 4429:
        assert time.monotonic() < deadline, "the closed socket's slot was not released"
        time.sleep(0.05)
    assert code is None
    for ws in opened:
        ws.close()


def test_slots_of_sockets_whose_token_expired_are_reclaimed(servers: Servers) -> None:
    # given an account whose slots are all held by sockets of a process that died (their
    # tokens expired a while ago, nothing released them)
    order_id, customer = _order()
    key = f"{servers.namespace}:1:ws-sockets:{customer.pk}"
    past = time.time() - 60
    get_redis().zadd(key, {f"dead-process-channel-{n}": past for n in range(MAX_SOCKETS)})

    # when the account opens a socket, then it is served
    _watch(servers.ws, order_id, _token(customer)).close()


# -- frames ------------------------------------------------------------------------------------


def test_a_message_over_64_kib_closes_the_socket_with_1009(servers: Servers) -> None:
    order_id, customer = _order()
    ws = _watch(servers.ws, order_id, _token(customer))
    # just under the limit: answered, the socket stays
    answer = _send(ws, {"type": "ping", "pad": "x" * (60 * 1024)})
    assert answer == {"type": "pong"}

    ws.send(json.dumps({"type": "ping", "pad": "x" * (64 * 1024)}))

    assert _close_code(ws, timeout=10) == 1009


@pytest.mark.parametrize(
    "frame", ["not json", "[1, 2]", '"ping"', '{"type": "subscribe"}', "{}", b"\xff\xfe"]
)
def test_a_malformed_message_is_answered_and_the_socket_stays(
    servers: Servers, frame: str | bytes
) -> None:
    order_id, customer = _order()
    ws = _watch(servers.ws, order_id, _token(customer))

    ws.send(frame)
    answer = json.loads(ws.recv(timeout=10))

    assert answer["type"] == "error", answer
    assert answer["code"] == "malformed_request"
    assert answer["error"]["code"] == "malformed_request"  # the v1 envelope, kept
    _still_open(ws)
    ws.close()
