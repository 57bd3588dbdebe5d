"""The real public and admin servers as processes, for the security tests that drive them
over HTTP (tests/live.py). Not a test module: nothing here is named ``test_*``.

The public server runs without workers (these tests place no orders); both servers share
the test database, the Redis db and one cache key prefix, as two servers of one deploy do.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.live import (
    delete_namespace_keys,
    free_port,
    live_environment,
    session_namespace,
    spawn,
    stop,
    wait_ready,
)


@dataclass
class LiveServers:
    public: str
    admin: str
    logs: dict[str, Path]


@pytest.fixture(scope="module")
def live_servers(django_db_setup: None) -> Iterator[LiveServers]:
    namespace = session_namespace("lokaly-security")
    delete_namespace_keys(namespace)
    env = live_environment(namespace)
    logs: dict[str, Path] = {}
    public_port, admin_port = free_port(), free_port()
    serve = ["serve", "--no-migrate", "--workers", "1", "--port"]
    procs = {
        "public": spawn(
            "security-public",
            ["manage_public.py", *serve, str(public_port)],
            {**env, "DJANGO_SETTINGS_MODULE": "lokaly_public.settings.test"},
            logs,
        ),
        "admin": spawn(
            "security-admin",
            ["manage_admin.py", *serve, str(admin_port)],
            {**env, "DJANGO_SETTINGS_MODULE": "lokaly_admin.settings.test"},
            logs,
        ),
    }
    try:
        servers = LiveServers(
            f"http://127.0.0.1:{public_port}", f"http://127.0.0.1:{admin_port}", logs
        )
        wait_ready(servers.public, procs, logs)
        wait_ready(servers.admin, procs, logs)
        yield servers
    finally:
        for proc in procs.values():
            stop(proc)
        delete_namespace_keys(namespace)
