"""Graceful shutdown of the public server (docs/reliability.md, promise 6, the server
half): a SIGTERM lets the request in flight finish, closes the order sockets with 1001
and exits 0."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.conftest import order_body
from tests.factories import PASSWORD, StockFactory, UserFactory
from tests.live import free_port, spawn, stop, wait_ready

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

EXIT_DEADLINE_S = 15


def _partial_login(port: int, email: str) -> tuple[socket.socket, bytes]:
    """Open ``POST /api/auth/token`` and send all but the last bytes of its body: the
    request is in flight (headers read, handler waiting for the body) until the rest is
    sent. Returns the socket and the bytes still to send."""
    body = json.dumps({"email": email, "password": PASSWORD}).encode()
    head = (
        f"POST /api/auth/token HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(head + body[:-5])
    return sock, body[-5:]


def _read_response(sock: socket.socket) -> tuple[int, bytes]:
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
        head, sep, rest = data.partition(b"\r\n\r\n")
        if sep and b"content-length:" in head.lower():
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            if len(rest) >= length:
                break
    return int(data.split(b" ", 2)[1]), data.partition(b"\r\n\r\n")[2]


def test_sigterm_drains_requests_closes_sockets_with_1001_and_exits_0(live_env) -> None:
    # given a public server (two uvicorn processes), an order watched on its socket, and a
    # login request whose body is still arriving
    port = free_port()
    logs: dict[str, Path] = {}
    env = {**live_env, "DJANGO_SETTINGS_MODULE": "lokaly_public.settings.test"}
    args = ["manage_public.py", "serve", "--no-migrate", "--port", str(port), "--workers", "2"]
    server = spawn("shutdown-public", args, env, logs)
    try:
        wait_ready(f"http://127.0.0.1:{port}", {"public": server}, logs)
        stock = StockFactory.create(on_hand=5)
        customer = UserFactory.create()
        token = httpx.post(
            f"http://127.0.0.1:{port}/api/auth/token",
            json={"email": customer.email, "password": PASSWORD},
        ).json()["access"]
        order = httpx.post(
            f"http://127.0.0.1:{port}/api/orders",
            headers={"Authorization": f"Bearer {token}"},
            json=order_body(stock.store_id, (stock.product_id, 1)),
        ).json()
        ws = connect(f"ws://127.0.0.1:{port}/ws/orders/{order['id']}/?token={token}")
        assert json.loads(ws.recv(timeout=10))["type"] == "order.snapshot"
        in_flight, rest = _partial_login(port, customer.email)
        time.sleep(0.3)  # the server has read the headers and started the request

        # when the server is told to stop
        os.kill(server.pid, signal.SIGTERM)

        # then the socket is closed with 1001 (going away) ...
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=10)  # nothing else is sent to this order's watchers meanwhile
        assert ws.close_code == 1001, (ws.close_code, ws.close_reason)
        # ... the request in flight still completes ...
        in_flight.sendall(rest)
        status, body = _read_response(in_flight)
        assert status == 200, body
        assert set(json.loads(body)) == {"access", "refresh"}
        in_flight.close()
        # ... and the server exits 0 within the deadline, refusing new connections
        assert server.wait(timeout=EXIT_DEADLINE_S) == 0, logs["shutdown-public"].read_text()
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
    except subprocess.TimeoutExpired:
        pytest.fail(f"server still running {EXIT_DEADLINE_S}s after SIGTERM")
    finally:
        stop(server)
