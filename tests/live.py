"""The real servers and workers as processes on the test database: free ports, their
environment, starting, waiting for ``/health/ready`` and stopping.

Used by the end-to-end fixtures (tests/e2e/conftest.py) and the browser test
(tests/admin/test_browser.py). Not a test module: nothing here is named ``test_*``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from django.conf import settings

from lokaly_core.redis_client import get_redis

ROOT = Path(__file__).resolve().parents[1]
READY_TIMEOUT_SECONDS = 60


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def live_database_url() -> str:
    """``DATABASE_URL`` pointing at the test database (call after ``django_db_setup``)."""
    parts = urlsplit(os.environ.get("DATABASE_URL") or settings.DATABASE_URL)
    return urlunsplit(parts._replace(path="/" + settings.DATABASES["default"]["NAME"]))


def session_namespace(name: str) -> str:
    """``name`` made unique to this test session by the test database's name, for the
    stream names and cache prefix of the processes: two runs on one Redis never share
    them (two runs on one PostgreSQL already need two test database names)."""
    return f"{name}-{settings.DATABASES['default']['NAME']}"


def live_environment(namespace: str) -> dict[str, str]:
    """The environment of a process on the test database and Redis, with streams and cache
    keys of its own (``<namespace>:events``, ``<namespace>:events:dead``, ``<namespace>:``),
    so it never consumes the events of in-process tests."""
    return {
        **os.environ,
        "DATABASE_URL": live_database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "EVENT_STREAM": f"{namespace}:events",
        "DEAD_LETTER_STREAM": f"{namespace}:events:dead",
        "CACHE_KEY_PREFIX": namespace,
        "PYTHONUNBUFFERED": "1",
    }


def delete_namespace_keys(namespace: str) -> None:
    """Delete the streams and cache keys of ``live_environment(namespace)``."""
    client = get_redis()
    keys = list(client.scan_iter(match=f"{namespace}:*", count=1000))
    if keys:
        client.delete(*keys)


# Every process spawn() started, so that the end of the test session can make sure none
# outlives it (tests/conftest.py): a leftover worker would go on writing to the next run's
# test database, which has the same name.
SPAWNED: list[subprocess.Popen[bytes]] = []


def spawn(
    name: str, args: list[str], env: dict[str, str], logs: dict[str, Path]
) -> subprocess.Popen[bytes]:
    """Start ``python <args>`` in the repo, in its own process group, its output in a
    temporary log file recorded in ``logs[name]``. Its database sessions carry the
    application name ``lokaly-live-<name>`` (pg_stat_activity says whose a session is)."""
    log = Path(tempfile.gettempdir()) / f"lokaly-live-{name}-{os.getpid()}.log"
    logs[name] = log
    proc = subprocess.Popen(
        [sys.executable, *args],
        cwd=ROOT,
        env={**env, "PGAPPNAME": f"lokaly-live-{name}"},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    SPAWNED.append(proc)
    return proc


def stop_all_spawned() -> list[int]:
    """Stop what is left of every spawned process group; the pids that were still running."""
    left = [proc.pid for proc in SPAWNED if proc.poll() is None]
    for proc in SPAWNED:
        stop(proc)
    SPAWNED.clear()
    return left


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group, SIGKILL it if it is still there 15 seconds later."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


def wait_ready(url: str, procs: dict[str, subprocess.Popen[bytes]], logs: dict[str, Path]) -> None:
    """Poll ``<url>/health/ready`` until it answers 200; fail the test with the logs' tails
    if one of ``procs`` exits first or a minute passes."""
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
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
