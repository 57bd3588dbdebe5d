"""``manage_public.py serve --server daphne``: the documented alternative to uvicorn serves
the same API and sockets (Channels' reference server, one process)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from django.core.management import CommandError, call_command
from websockets.sync.client import connect

from tests.conftest import order_body
from tests.factories import PASSWORD, StockFactory, UserFactory
from tests.live import free_port, spawn, stop, wait_ready

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def daphne_stack(live_env: dict[str, str]) -> Iterator[str]:
    port = free_port()
    logs: dict[str, Path] = {}
    processes = {
        "daphne": spawn(
            "daphne",
            [
                "manage_public.py",
                "serve",
                "--no-migrate",
                "--server",
                "daphne",
                "--port",
                str(port),
            ],
            {**live_env, "DJANGO_SETTINGS_MODULE": "lokaly_public.settings.test"},
            logs,
        ),
        "worker": spawn(
            "daphne-worker",
            ["manage_admin.py", "run_worker", "--no-migrate", "--consumer", "daphne-worker"],
            {**live_env, "DJANGO_SETTINGS_MODULE": "lokaly_admin.settings.test"},
            logs,
        ),
    }
    try:
        wait_ready(f"http://127.0.0.1:{port}", processes, logs)
        yield f"127.0.0.1:{port}"
    finally:
        for proc in processes.values():
            stop(proc)


def test_daphne_serves_an_order_and_its_socket(daphne_stack: str) -> None:
    # given a stocked store and a customer logged in over daphne
    stock = StockFactory.create(on_hand=3)
    customer = UserFactory.create()
    login = httpx.post(
        f"http://{daphne_stack}/api/auth/token",
        json={"email": customer.email, "password": PASSWORD},
    )
    assert login.status_code == 200, login.text
    token = login.json()["access"]

    # when they order and watch the order's socket
    created = httpx.post(
        f"http://{daphne_stack}/api/orders",
        headers={"Authorization": f"Bearer {token}"},
        json=order_body(stock.store_id, (stock.product_id, 2)),
    )
    assert created.status_code == 201, created.text
    order_id = created.json()["id"]
    with connect(f"ws://{daphne_stack}/ws/orders/{order_id}/?token={token}", open_timeout=10) as ws:
        snapshot = json.loads(ws.recv(timeout=10))
        status = snapshot["order"]["status"]
        while status != "confirmed":  # the worker may confirm before or after the snapshot
            change = json.loads(ws.recv(timeout=10))
            assert change["type"] == "order.status_changed", change
            status = change["status"]

    # then the snapshot came first and the worker's confirmation reached the customer
    assert snapshot["type"] == "order.snapshot"
    assert snapshot["order"]["id"] == order_id


def test_daphne_runs_one_process() -> None:
    with pytest.raises(CommandError, match="daphne runs one process"):
        call_command("serve", server="daphne", workers=2)
