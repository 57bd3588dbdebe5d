"""The real public server and worker as processes, on the test database.

They use their own stream names, unique to the test session, so they never consume events
of in-process tests nor of another test run on the same Redis.
"""

from __future__ import annotations

import subprocess
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
class LiveStack:
    http: str
    ws: str
    processes: dict[str, subprocess.Popen[bytes]]
    logs: dict[str, Path]

    def start_worker(self, name: str, env: dict[str, str]) -> None:
        self.processes[name] = spawn(
            name,
            ["manage_admin.py", "run_worker", "--no-migrate", "--consumer", name],
            env,
            self.logs,
        )


@pytest.fixture(scope="module")
def live_env(django_db_setup: None) -> Iterator[dict[str, str]]:
    namespace = session_namespace("lokaly-e2e")
    delete_namespace_keys(namespace)
    yield live_environment(namespace)
    delete_namespace_keys(namespace)


@pytest.fixture(scope="module")
def live_stack(live_env: dict[str, str]) -> Iterator[LiveStack]:
    port = free_port()
    logs: dict[str, Path] = {}
    public_env = {**live_env, "DJANGO_SETTINGS_MODULE": "lokaly_public.settings.test"}
    worker_env = {**live_env, "DJANGO_SETTINGS_MODULE": "lokaly_admin.settings.test"}
    processes = {
        "public": spawn(
            "public",
            ["manage_public.py", "serve", "--no-migrate", "--port", str(port), "--workers", "2"],
            public_env,
            logs,
        ),
    }
    stack = LiveStack(f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}", processes, logs)
    stack.start_worker("worker-1", worker_env)
    stack.start_worker("worker-2", worker_env)
    try:
        wait_ready(stack.http, processes, logs)
        yield stack
    finally:
        for proc in processes.values():
            stop(proc)


@dataclass
class LiveAdmin:
    http: str
    process: subprocess.Popen[bytes]
    log: Path


@pytest.fixture(scope="module")
def live_admin(live_env: dict[str, str]) -> Iterator[LiveAdmin]:
    """The real admin server (WSGI, one process) on the test database, next to live_stack."""
    port = free_port()
    logs: dict[str, Path] = {}
    env = {**live_env, "DJANGO_SETTINGS_MODULE": "lokaly_admin.settings.test"}
    args = ["manage_admin.py", "serve", "--no-migrate", "--port", str(port), "--workers", "1"]
    process = spawn("admin", args, env, logs)
    try:
        wait_ready(f"http://127.0.0.1:{port}", {"admin": process}, logs)
        yield LiveAdmin(f"http://127.0.0.1:{port}", process, logs["admin"])
    finally:
        stop(process)
