"""The real public server and worker as processes, on the test database.

They use their own stream names so they never consume events of in-process tests.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class LiveStack:
    http: str
    ws: str
    processes: dict[str, subprocess.Popen[bytes]]
    logs: dict[str, Path]

    def start_worker(self, name: str, env: dict[str, str]) -> None:
        self.processes[name] = _spawn(
            name,
            ["manage_admin.py", "run_worker", "--no-migrate", "--consumer", name],
            env,
            self.logs,
        )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _test_database_url() -> str:
    parts = urlsplit(os.environ.get("DATABASE_URL") or settings.DATABASE_URL)
    return urlunsplit(parts._replace(path="/" + settings.DATABASES["default"]["NAME"]))


def _spawn(
    name: str, args: list[str], env: dict[str, str], logs: dict[str, Path]
) -> subprocess.Popen[bytes]:
    log = Path(tempfile.gettempdir()) / f"lokaly-e2e-{name}-{os.getpid()}.log"
    logs[name] = log
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


@pytest.fixture(scope="module")
def live_env(django_db_setup: None) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": _test_database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "EVENT_STREAM": "lokaly-e2e:events",
        "DEAD_LETTER_STREAM": "lokaly-e2e:events:dead",
        "CACHE_KEY_PREFIX": "lokaly-e2e",
        "PYTHONUNBUFFERED": "1",
    }


@pytest.fixture(scope="module")
def live_stack(live_env: dict[str, str]) -> Iterator[LiveStack]:
    port = _free_port()
    logs: dict[str, Path] = {}
    public_env = {**live_env, "DJANGO_SETTINGS_MODULE": "lokaly_public.settings.test"}
    worker_env = {**live_env, "DJANGO_SETTINGS_MODULE": "lokaly_admin.settings.test"}
    processes = {
        "public": _spawn(
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
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{stack.http}/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            dead = {n: p.returncode for n, p in processes.items() if p.poll() is not None}
            if dead or time.monotonic() > deadline:
                out = {n: logs[n].read_text()[-3000:] for n in logs}
                pytest.fail(f"live stack did not become ready (exited: {dead}); logs: {out}")
            time.sleep(0.1)
        yield stack
    finally:
        for proc in processes.values():
            _stop(proc)


@dataclass
class LiveAdmin:
    http: str
    process: subprocess.Popen[bytes]
    log: Path


def _wait_ready(url: str, procs: dict[str, subprocess.Popen[bytes]], logs: dict[str, Path]) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/health/ready", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        dead = {n: p.returncode for n, p in procs.items() if p.poll() is not None}
        if dead or time.monotonic() > deadline:
            out = {n: logs[n].read_text()[-3000:] for n in logs}
            pytest.fail(f"{url} did not become ready (exited: {dead}); logs: {out}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def live_admin(live_env: dict[str, str]) -> Iterator[LiveAdmin]:
    """The real admin server (WSGI, one process) on the test database, next to live_stack."""
    port = _free_port()
    logs: dict[str, Path] = {}
    env = {**live_env, "DJANGO_SETTINGS_MODULE": "lokaly_admin.settings.test"}
    args = ["manage_admin.py", "serve", "--no-migrate", "--port", str(port), "--workers", "1"]
    process = _spawn("admin", args, env, logs)
    try:
        _wait_ready(f"http://127.0.0.1:{port}", {"admin": process}, logs)
        yield LiveAdmin(f"http://127.0.0.1:{port}", process, logs["admin"])
    finally:
        _stop(process)
